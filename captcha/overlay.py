"""Pictures of where the sequential form looked: one panel per character position.

Presentation helper shared by both front ends; pure PIL/numpy, no torch.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .recognizer import Reading

PANEL_HEIGHT = 128


def attention_panels(image: Image.Image, reading: Reading, panel_height: int = PANEL_HEIGHT) -> Image.Image:
    """The image once per position, with that position's map as a red heat overlay and its reading above."""
    if reading.maps is None:
        raise ValueError("this reading has no maps (only the sequential form has them)")
    image = image.convert("RGB")
    scale = panel_height / image.height
    size = (max(1, round(image.width * scale)), panel_height)
    base = np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    label_h = 18
    panels = Image.new("RGB", (size[0] * max(1, len(reading.chars)), panel_height + label_h), "white")  # "" reads no panel
    draw = ImageDraw.Draw(panels)
    # The maps cover the part of the image the model read (its spec's crop box).
    left, top, right, bottom = (round(f * n) for f, n in zip(reading.box, size + size))
    box_size = (max(1, right - left), max(1, bottom - top))
    for k, (heat, char) in enumerate(zip(reading.maps, reading.chars)):
        heat = np.asarray(heat, dtype=np.float32)
        heat = heat / heat.max() if heat.max() > 0 else heat
        canvas = Image.new("L", size, 0)
        canvas.paste(Image.fromarray((heat * 255).astype(np.uint8)).resize(box_size, Image.Resampling.BILINEAR),
                     (left, top))
        heat = np.asarray(canvas, dtype=np.float32)[..., None] / 255.0
        tinted = base * (1 - 0.6 * heat) + np.array([255.0, 0.0, 0.0]) * 0.6 * heat
        panels.paste(Image.fromarray(tinted.clip(0, 255).astype(np.uint8)), (k * size[0], label_h))
        draw.text((k * size[0] + 4, 3), f"{k + 1}: {char.char}  {char.confidence:.0%}", fill="black")
    return panels
