"""Decode one image file into a presize x presize uint8 array (the chapter's `Resize(presize)`).

Two methods:
- "crop" (the default): scale the shortest side to `presize`, then take the centre square.
  It is the default because it is what the chapter's `Resize(presize)` does (fastai's
  default ResizeMethod.Crop) and it never distorts the object; the random resized crop that
  follows at batch time supplies the positional variety a random item crop would.
- "squish": scale both sides to `presize`, keeping the whole picture but changing its
  aspect ratio.

JPEGs are decoded at a reduced size when the presize allows (Pillow's `draft` makes libjpeg
decode at 1/2, 1/4 or 1/8 scale, several times faster), then resized with an antialiased
bilinear filter in one call that also crops (`resize(box=...)`).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

METHODS = ("crop", "squish")
# A 12,000 x 12,000 photo is the largest we accept: far beyond any classification image, and
# it stops a tiny "decompression bomb" file from claiming gigabytes of memory.
MAX_PIXELS = 144_000_000


class UnreadableImage(Exception):
    """The file cannot be decoded as an image; the message says why."""


def decode_image(path: str | Path, presize: int, method: str = "crop", channels: int = 3) -> np.ndarray:
    """Return the image as uint8 `presize, presize, channels`, or raise UnreadableImage."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise UnreadableImage(f"{w}x{h} pixels is over the {MAX_PIXELS:,} limit")
                if im.format == "JPEG":
                    im.draft("L" if channels == 1 else "RGB", (presize, presize))
                im = _to_mode(im, channels)
                # Read the pixels while the file is open: `_resize` may return `im` itself.
                arr = np.asarray(_resize(im, presize, method), dtype=np.uint8)
    except UnreadableImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UnreadableImage(f"decompression bomb ({e})") from None
    except (OSError, ValueError, SyntaxError, EOFError, Image.UnidentifiedImageError) as e:
        raise UnreadableImage(str(e) or type(e).__name__) from None
    return arr.reshape(presize, presize, channels)


def _to_mode(im: Image.Image, channels: int) -> Image.Image:
    """Any Pillow mode -> RGB (or L). Transparent pixels become white, 16-bit is scaled down."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        scale = 255.0 / 65535.0 if a.max() > 255 else 1.0
        im = Image.fromarray(np.clip(a * scale, 0, 255).astype(np.uint8), "L")
    elif im.mode == "F":
        im = Image.fromarray(np.clip(np.asarray(im), 0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    want = "L" if channels == 1 else "RGB"
    return im if im.mode == want else im.convert(want)


def _resize(im: Image.Image, presize: int, method: str) -> Image.Image:
    w, h = im.size
    if method == "squish":
        box = (0.0, 0.0, float(w), float(h))
    else:
        side = min(w, h)
        left, top = (w - side) / 2, (h - side) / 2
        box = (left, top, left + side, top + side)
    if box == (0.0, 0.0, float(presize), float(presize)) and im.size == (presize, presize):
        return im
    return im.resize((presize, presize), Image.Resampling.BILINEAR, box=box)


def decode_into(store_path: str, start: int, paths: list[str], presize: int, method: str,
                channels: int) -> list[tuple[int, str]]:
    """Worker job: decode `paths` into rows `start...` of the .npy store; return failures.

    Runs in a separate process, so it opens the memory map itself and sends back only the
    list of (index, reason) for unreadable files, never pixels.
    """
    store = np.load(store_path, mmap_mode="r+")
    bad = []
    for i, p in enumerate(paths, start):
        try:
            store[i] = decode_image(p, presize, method, channels)
        except UnreadableImage as e:
            bad.append((i, str(e)))
    store.flush()
    del store
    return bad
