import numpy as np
from PIL import Image

from captcha.overlay import attention_panels
from captcha.recognizer import CharReading, Reading


def _reading(box):
    maps = np.zeros((2, 4, 8), np.float32)
    maps[0, :, 0] = 1  # position 1 looked at the left edge of its box
    maps[1, :, 7] = 1  # position 2 at the right edge
    return Reading("ab", 0.5, [CharReading("a", 0.9), CharReading("b", 0.6)], maps=maps, box=box)


def _redness(panel):
    a = np.asarray(panel, dtype=np.float32)
    return a[..., 0] - a[..., 1]  # red overlay on a white image


def test_one_panel_per_position_with_heat_where_it_looked():
    image = Image.new("RGB", (256, 256), "white")
    panels = attention_panels(image, _reading((0.0, 0.0, 1.0, 1.0)), panel_height=128)
    assert panels.size == (2 * 128, 128 + 18)
    red = _redness(panels.crop((0, 18, 256, 146)))
    assert red[:, :20].mean() > 50 and red[:, 108:128].mean() < 5      # panel 1: left edge
    assert red[:, 236:256].mean() > 50 and red[:, 128:148].mean() < 5  # panel 2: right edge


def test_maps_are_placed_in_the_box_the_model_read():
    image = Image.new("RGB", (256, 256), "white")
    panels = attention_panels(image, _reading((0.0, 0.25, 1.0, 0.75)), panel_height=128)
    red = _redness(panels.crop((0, 18, 128, 146)))
    assert red[40:88, :10].mean() > 50          # inside the band
    assert red[:28, :].max() < 5 and red[100:, :].max() < 5  # nothing above or below it
