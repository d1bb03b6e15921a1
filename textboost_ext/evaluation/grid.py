"""A labelled contact sheet: one row per prompt (its text on the left), one tile per image with a caption."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textboost_ext.atomic_write import atomic_output

MIN_TILE, MAX_TILE = 128, 256
GAP = 4
ROW_LABEL_WIDTH = 200
CAPTION_HEIGHT = 14
CHARS_PER_LINE = 30


def wrap(text: str, width: int, max_lines: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters (words kept whole where they fit), at most ``max_lines``."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        while len(word) > width:  # a word longer than a line is cut
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:width])
            word = word[width:]
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 3] + "..."
    return lines


def save_labelled_grid(path: Path, rows: Sequence[tuple[str, Sequence[tuple[Any, str]]]], tile: int | None = None) -> Path:
    """``rows``: ``(row label, [(PIL image, caption), ...])``. Each image is fitted into a ``tile`` px square
    (default: the largest image side, within 128..256); small images are enlarged without smoothing."""
    from PIL import Image, ImageDraw, ImageFont

    images = [image for _, cells in rows for image, _ in cells]
    if not images:
        raise ValueError("a grid needs at least one image")
    tile = tile or max(MIN_TILE, min(MAX_TILE, max(max(im.size) for im in images)))
    columns = max(len(cells) for _, cells in rows)
    cell_height = tile + CAPTION_HEIGHT
    canvas = Image.new("RGB", (ROW_LABEL_WIDTH + columns * (tile + GAP), len(rows) * (cell_height + GAP)), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    max_lines = max(1, cell_height // 12)
    for r, (label, cells) in enumerate(rows):
        y = r * (cell_height + GAP)
        draw.multiline_text((4, y + 4), "\n".join(wrap(label, CHARS_PER_LINE, max_lines)), fill="black", font=font, spacing=2)
        for c, (image, caption) in enumerate(cells):
            x = ROW_LABEL_WIDTH + c * (tile + GAP)
            w, h = image.size
            fit = (max(1, round(w * tile / max(w, h))), max(1, round(h * tile / max(w, h))))  # keep the aspect ratio
            resample = Image.Resampling.NEAREST if max(w, h) < tile else Image.Resampling.LANCZOS
            canvas.paste(image.convert("RGB").resize(fit, resample), (x + (tile - fit[0]) // 2, y + (tile - fit[1]) // 2))
            draw.text((x + 2, y + tile + 1), caption[: tile // 6], fill="black", font=font)
    with atomic_output(path) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(path)
