"""Draw the demo subject: a 256x256 red coffee mug on a plain background (deterministic, PIL only).

    .venv/bin/python scripts/make_demo_image.py            # writes examples/demo_subject/1_mug/mug.png

The folder name follows kohya's ``<repeats>_<class tokens>`` convention: 1 repeat, class "mug".
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SIZE = 256
SCALE = 4  # draw at 4x and downsample: cheap anti-aliasing
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "examples" / "demo_subject" / "1_mug" / "mug.png"

BODY = (196, 48, 42)  # glazed red
RIM = (236, 226, 214)
COFFEE = (74, 44, 26)
CREMA = (150, 104, 62)
BAND = (246, 240, 230)


def _shade(color: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, round(c * factor))) for c in color)  # type: ignore[return-value]


def draw_mug() -> Image.Image:
    s = SCALE
    img = Image.new("RGB", (SIZE * s, SIZE * s))
    draw = ImageDraw.Draw(img)
    # Plain backdrop with a soft vertical gradient and a table edge, like a product photo.
    for y in range(SIZE * s):
        t = y / (SIZE * s)
        base = (226, 221, 212) if t < 0.72 else (204, 196, 184)
        draw.line([(0, y), (SIZE * s, y)], fill=_shade(base, 1.04 - 0.08 * t))

    left, right, top, bottom = 70 * s, 170 * s, 78 * s, 206 * s
    ellipse_h = 22 * s
    # Soft contact shadow on the table.
    shadow = Image.new("L", img.size, 0)
    ImageDraw.Draw(shadow).ellipse([left - 6 * s, bottom - 12 * s, right + 40 * s, bottom + 14 * s], fill=120)
    shadow = shadow.filter(ImageFilter.GaussianBlur(8 * s))
    img.paste((90, 80, 70), mask=shadow)
    draw = ImageDraw.Draw(img)

    # Handle: a thick ring on the right, drawn first so the body covers its inner half.
    draw.ellipse([right - 22 * s, 104 * s, right + 36 * s, 176 * s], outline=_shade(BODY, 0.82), width=15 * s)
    draw.ellipse([right - 20 * s, 106 * s, right + 33 * s, 173 * s], outline=_shade(BODY, 0.95), width=7 * s)

    # Body: a cylinder shaded column by column (highlight left of centre, darker edges).
    for x in range(left, right):
        u = (x - left) / (right - left)
        light = 0.62 + 0.5 * (1 - abs(u - 0.35) / 0.65) ** 1.5
        draw.line([(x, top + ellipse_h // 2), (x, bottom - ellipse_h // 2)], fill=_shade(BODY, light))
    draw.ellipse([left, bottom - ellipse_h, right - 1, bottom], fill=_shade(BODY, 0.7))
    for x in range(left, right):  # re-shade the bottom half-ellipse's upper part to blend
        u = (x - left) / (right - left)
        light = 0.62 + 0.5 * (1 - abs(u - 0.35) / 0.65) ** 1.5
        draw.line([(x, bottom - ellipse_h), (x, bottom - ellipse_h // 2)], fill=_shade(BODY, light))

    # A cream band with a small heart: something for the model to remember besides "red".
    band_top, band_bottom = 132 * s, 150 * s
    for x in range(left, right):
        u = (x - left) / (right - left)
        light = 0.8 + 0.25 * (1 - abs(u - 0.35) / 0.65)
        draw.line([(x, band_top), (x, band_bottom)], fill=_shade(BAND, min(light, 1.0)))
    cx, cy, r = 112 * s, 141 * s, 5 * s
    draw.ellipse([cx - 2 * r, cy - r, cx, cy + r // 2], fill=BODY)
    draw.ellipse([cx, cy - r, cx + 2 * r, cy + r // 2], fill=BODY)
    draw.polygon([(cx - 2 * r + s, cy), (cx + 2 * r - s, cy), (cx, cy + 2 * r)], fill=BODY)

    # Rim and coffee surface.
    draw.ellipse([left, top, right - 1, top + ellipse_h], fill=RIM)
    inset = 6 * s
    draw.ellipse([left + inset, top + inset // 2, right - 1 - inset, top + ellipse_h - inset // 2], fill=COFFEE)
    draw.ellipse([left + 30 * s, top + 6 * s, left + 52 * s, top + 12 * s], fill=CREMA)
    return img.resize((SIZE, SIZE), Image.LANCZOS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    out = parser.parse_args().out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    draw_mug().save(tmp, format="PNG", optimize=True)
    os.replace(tmp, out)  # never leave a half-written image at the final path
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
