"""Decode one image file into a presize x presize uint8 array, as an image viewer shows it.

Every path that turns a file into pixels (the decode cache for train and valid, `predict`,
`evaluate --folder`, the report) goes through `decode_image` (one file) or `decode_images`
(a list, skipping and reporting unreadable files), so all of them see the same pixels.

Two resize methods:
- "crop" (the default): scale the shortest side to `presize`, then take the centre square.
  It is the default because it is what the chapter's `Resize(presize)` does (fastai's
  default ResizeMethod.Crop) and it never distorts the object; the random resized crop that
  follows at batch time supplies the positional variety a random item crop would.
- "squish": scale both sides to `presize`, keeping the whole picture but changing its
  aspect ratio.

Like a viewer:
- EXIF orientation is applied (the 8 cases of Pillow's `ImageOps.exif_transpose`), so a
  phone photo stored sideways is seen upright.
- 16-bit images are scaled by their type's range (value / 257, libpng's rounding scale from
  65535 to 255), never per image: a dark 16-bit picture stays dark.
- Transparent pixels are shown on white; palette, CMYK, 1-bit and float images are
  converted as Pillow converts them.

Size limit: what is refused is the area that would really be decoded. JPEGs are decoded at a
reduced size when the presize allows (Pillow's `draft` makes libjpeg decode at 1/2, 1/4 or
1/8 scale, several times faster and smaller), so a 200-megapixel phone photo costs 3 MP at
presize 160. Only an image whose decoded area exceeds MAX_PIXELS (300 MP, about 900 MB as
RGB) is refused as a possible decompression bomb. Pillow's own guard (a warning above 89 MP,
an error above 179 MP) would refuse real 108 and 200 MP photos, so its warning is silenced
and its error answered by re-opening the file with our limit instead.

Non-regular files (a FIFO, socket or device named `x.jpg`) are refused without being opened
for reading, so a FIFO can never block a decode.
"""
from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

import numpy as np
from PIL import Image

from resnette.display import term
from resnette.files import open_read
from resnette.utils import ResnetteError

METHODS = ("crop", "squish")
MAX_PIXELS = 300_000_000  # decoded area (after JPEG draft) above which a file is refused
_ORIENTATION = 0x0112      # the EXIF tag
# EXIF orientation -> the transpose that shows the image upright (Pillow's exif_transpose).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class UnreadableImage(Exception):
    """The file cannot be decoded as an image; the message says why."""


@dataclass
class Decoded:
    """The images of a list of files that could be read, and why the others could not."""

    images: np.ndarray           # uint8 n_ok,P,P,C, in the order of the readable files
    ok: np.ndarray               # bool, one per file given
    bad: list[tuple[str, str]]   # (path, reason) of each unreadable file


def decode_image(path: str | os.PathLike, presize: int, method: str = "crop",
                 channels: int = 3) -> np.ndarray:
    """Return the image as uint8 `presize, presize, channels`, or raise UnreadableImage."""
    try:
        with warnings.catch_warnings(), _open_regular(path) as f, _open_image(f) as im:
            full = im.size
            if im.format == "JPEG":
                im.draft("L" if channels == 1 else "RGB", (presize, presize))
            _check_area(im, full)
            turn = _orientation(im)
            im = _to_mode(im, channels)
            if turn is not None:
                im = im.transpose(turn)
            # Read the pixels while the file is open: `_resize` may return `im` itself.
            arr = np.asarray(_resize(im, presize, method), dtype=np.uint8)
    except UnreadableImage:
        raise
    except Image.DecompressionBombError as e:   # e.g. a TIFF tile over Pillow's limit
        raise UnreadableImage(f"decompression bomb ({e})") from None
    except Exception as e:  # noqa: BLE001 - any failure to decode untrusted bytes is "unreadable"
        raise UnreadableImage(str(e) or type(e).__name__) from None
    return arr.reshape(presize, presize, channels)


def decode_images(paths: Sequence[str | os.PathLike], presize: int, method: str = "crop",
                  channels: int = 3) -> Decoded:
    """Decode every readable file of `paths`; the unreadable ones are reported, not raised.

    For callers that must go on past a bad file (predict on a folder): show the user
    `unreadable_warning(decoded.bad, len(paths), where)` and use `decoded.images`.
    """
    arrays, ok, bad = [], np.zeros(len(paths), dtype=bool), []
    for i, p in enumerate(paths):
        try:
            arrays.append(decode_image(p, presize, method, channels))
            ok[i] = True
        except UnreadableImage as e:
            bad.append((str(p), str(e)))
    images = np.stack(arrays) if arrays else np.zeros((0, presize, presize, channels), np.uint8)
    return Decoded(images, ok, bad)


def unreadable_warning(bad: Sequence[tuple[str, str]], total: int, where: str | os.PathLike) -> str:
    """The one line that tells the user which files were skipped and why (first ten named)."""
    shown = "; ".join(f"{printable(p)} ({printable(why)[:80]})" for p, why in bad[:10])
    return (f"skipped {len(bad)} unreadable image(s) of {total} under {printable(where)}: "
            f"{shown}{' ...' if len(bad) > 10 else ''}")


def printable(name: str | os.PathLike) -> str:
    """A file name as text that any terminal can print: undecodable bytes shown as \\xNN,
    control characters escaped (resnette.display.term, the one rule for names shown)."""
    raw = os.fsencode(name) if isinstance(name, os.PathLike) else os.fsencode(str(name))
    return term(raw.decode("utf-8", "backslashreplace"))


def _open_regular(path: str | os.PathLike) -> IO[bytes]:
    """Open a regular file for reading; refuse FIFOs, sockets and devices without opening them.

    The stat before the open keeps a device from being opened at all; O_NONBLOCK and the
    fstat after it close the gap where the file could be swapped for a FIFO in between.
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise UnreadableImage(f"not a regular file ({_kind(mode)})")
    try:
        return open_read(path, "image")   # O_NONBLOCK and fstat close the gap since the stat
    except ResnetteError:
        raise UnreadableImage(f"not a regular file ({_kind(os.stat(path).st_mode)})") from None


def _kind(mode: int) -> str:
    return ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a folder" if stat.S_ISDIR(mode) else "not a file")


def _open_image(f: IO[bytes]) -> Image.Image:
    """Image.open without Pillow's pixel-count guard (we apply our own, after draft).

    Called inside catch_warnings: Pillow's warnings about a file (over 89 MP: real photos,
    not bombs; "Corrupt EXIF data") are not the user's news; what fails raises."""
    warnings.simplefilter("ignore")
    try:
        return Image.open(f)
    except Image.DecompressionBombError:
        pass
    # Over Pillow's 179 MP error: open it with the plugin Image.open chose, minus the guard
    # (Image.OPEN holds each format's (factory, accept) pair, tried in Image.ID order).
    f.seek(0)
    prefix = f.read(16)
    for name in Image.ID:
        factory, accept = Image.OPEN[name]
        if accept is None or accept(prefix) is True:
            f.seek(0)
            try:
                return factory(f, "")
            except (SyntaxError, IndexError, TypeError, ValueError):
                continue
    raise UnreadableImage("cannot identify the image format")


def _check_area(im: Image.Image, full: tuple[int, int]) -> None:
    """Refuse what would decode to more than MAX_PIXELS. A progressive JPEG counts at its full
    size: libjpeg keeps every coefficient of the whole image while it decodes one."""
    w, h = full if im.info.get("progressive") else im.size
    if w * h > MAX_PIXELS:
        raise UnreadableImage(f"decompression bomb? {w}x{h} is {w * h / 1e6:.0f} MP to decode, "
                              f"over the {MAX_PIXELS / 1e6:.0f} MP limit")


def _orientation(im: Image.Image) -> Image.Transpose | None:
    """The transpose that shows the image upright; a damaged EXIF block counts as upright,
    as viewers treat it."""
    try:
        value = im.getexif().get(_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a bad EXIF block must not make the pixels unreadable
        return None
    return _UPRIGHT.get(value) if isinstance(value, int) else None


def _to_mode(im: Image.Image, channels: int) -> Image.Image:
    """Any Pillow mode -> RGB (or L), as a viewer shows it (see the module docstring)."""
    if im.mode in _SIXTEEN_BIT:
        # Pillow holds 16-bit data as I;16* (and as I for some formats): scale by the type's
        # range with rounding, as libpng's png_set_scale_16 does; never by this image's max.
        a = np.asarray(im).astype(np.float32)
        im = Image.fromarray(np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8), "L")
    elif im.mode == "F":
        im = im.convert("L")  # float pixels on Pillow's 0..255 scale, clipped (as im.show())
    if im.mode in ("P", "L", "RGB") and "transparency" in im.info:
        im = im.convert("RGBA")  # a palette or colour-key transparency becomes an alpha channel
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
