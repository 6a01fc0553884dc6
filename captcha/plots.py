"""The reliability diagram and the risk-coverage curve of `evaluate`'s results, drawn with Pillow
(no plotting library to install): one PNG, a panel each, a line per form and for the answer."""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COLORS = {"one_go": (31, 119, 180), "sequential": (255, 127, 14), "answer": (44, 160, 44)}
PANEL, MARGIN = 420, 56


def draw(results: dict, path, title: str = "") -> Path:
    """Left: accuracy against mean confidence per bin (the diagonal is perfect calibration; dot
    area ~ share of readings). Right: accuracy of the most confident readings against the share kept."""
    forms = [f for f in ("one_go", "sequential", "answer") if f in results]
    image = Image.new("RGB", (2 * (PANEL + 2 * MARGIN), PANEL + 2 * MARGIN + 30), "white")
    d, font = ImageDraw.Draw(image), ImageFont.load_default()
    floor = min([0.9] + [p["accuracy"] for f in forms for p in results[f]["trust"]["curve"]])
    floor = max(0.0, int(floor * 20) / 20)  # the right panel's y axis starts at a multiple of 5%
    for panel, (name, xlabel, ylabel, y0) in enumerate((("reliability", "confidence", "accuracy", 0.0),
                                                          ("risk-coverage", "share kept (most confident first)",
                                                           "accuracy of those kept", floor))):
        left = panel * (PANEL + 2 * MARGIN) + MARGIN
        top = MARGIN

        def xy(x, y):
            return left + x * PANEL, top + PANEL - (y - y0) / (1 - y0) * PANEL

        d.rectangle([left, top, left + PANEL, top + PANEL], outline="black")
        for k in range(11):
            x, y = k / 10, y0 + k / 10 * (1 - y0)
            d.line([xy(x, y0), (xy(x, y0)[0], xy(x, y0)[1] + 4)], fill="black")
            d.text((xy(x, y0)[0] - 8, top + PANEL + 6), f"{x:.1f}", fill="black", font=font)
            d.line([xy(0, y), (xy(0, y)[0] - 4, xy(0, y)[1])], fill="black")
            d.text((left - 40, xy(0, y)[1] - 6), f"{y:.0%}" if y0 else f"{y:.1f}", fill="black", font=font)
        d.text((left + PANEL / 2 - 60, top + PANEL + 22), xlabel, fill="black", font=font)
        d.text((left, top - 34), f"{name}{': ' + title if title and not panel else ''}", fill="black", font=font)
        d.text((left - 44, top - 16), ylabel, fill="gray", font=font)
        if panel == 0:
            d.line([xy(0, 0), xy(1, 1)], fill=(180, 180, 180), width=1)
        for f in forms:
            t, color = results[f]["trust"], COLORS[f]
            if panel == 0:
                points = [(b["confidence"], b["accuracy"], b["count"]) for b in t["bins"] if b["count"]]
                total = max(sum(c for _, _, c in points), 1)
                d.line([xy(x, y) for x, y, _ in points], fill=color, width=2) if len(points) > 1 else None
                for x, y, c in points:
                    r = 2 + 10 * (c / total) ** 0.5
                    cx, cy = xy(x, y)
                    d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=color, width=2)
            else:
                d.line([xy(p["coverage"], max(p["accuracy"], y0)) for p in t["curve"]], fill=color, width=2)
    for i, f in enumerate(forms):
        t = results[f]["trust"]
        x = MARGIN + i * 250
        y = PANEL + 2 * MARGIN + 4
        d.rectangle([x, y + 3, x + 14, y + 13], fill=COLORS[f])
        d.text((x + 20, y), f"{f.replace('_', '-')}: ECE {t['ece']:.2%}, accuracy {t['accuracy']:.2%}",
               fill="black", font=font)
    path = Path(path)
    image.save(path)
    return path
