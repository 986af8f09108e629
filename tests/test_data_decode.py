"""Decoding like a viewer: EXIF orientation, 16-bit range, transparency and other modes, size
limits, non-regular files, and the list API predict uses to skip unreadable files.

Expected pixels come from Pillow itself (ImageOps.exif_transpose, Image.convert) or from the
raw values written into the file, never from resnette's decoder.
"""
import os
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from resnette.data.decode import (MAX_PIXELS, UnreadableImage, decode_image, decode_images, printable,
                                  unreadable_warning)


def photo(w: int = 64, h: int = 48) -> Image.Image:
    """An image whose every flip and turn looks different: gradients plus a bright corner."""
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + 2 * y) % 256], -1).astype(np.uint8)
    arr[: h // 4, : w // 4] = (255, 255, 0)
    return Image.fromarray(arr)


def with_orientation(im: Image.Image, path: Path, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(path, exif=exif.tobytes())
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png16(values: np.ndarray) -> bytes:
    """A 16-bit PNG written byte by byte (gray H,W or RGB H,W,3), as a camera tool would."""
    h, w = values.shape[:2]
    colour = 2 if values.ndim == 3 else 0
    rows = b"".join(b"\x00" + values[r].astype(">u2").tobytes() for r in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(rows))
            + png_chunk(b"IEND", b""))


# ------------------------------------------------------------------ EXIF orientation

@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_decodes_as_pillows_exif_transpose_shows_it(tmp_path, orientation):
    stored = with_orientation(photo(), tmp_path / "stored.png", orientation)
    with Image.open(stored) as im:
        upright = ImageOps.exif_transpose(im)          # Pillow's viewer semantics: the reference
    upright.save(tmp_path / "upright.png")             # no EXIF: decodes as is
    for method, presize in (("squish", 24), ("crop", 40)):
        got = decode_image(stored, presize, method)
        assert np.array_equal(got, decode_image(tmp_path / "upright.png", presize, method)), method
    if orientation != 1:   # and the tag really changed the pixels
        photo().save(tmp_path / "untagged.png")
        assert not np.array_equal(decode_image(stored, 24, "squish"),
                                  decode_image(tmp_path / "untagged.png", 24, "squish"))


@pytest.mark.parametrize("orientation, stored_as", [(3, Image.Transpose.ROTATE_180),
                                                     (6, Image.Transpose.ROTATE_90),
                                                     (8, Image.Transpose.ROTATE_270)])
def test_a_phone_jpeg_stored_turned_decodes_upright(tmp_path, orientation, stored_as):
    """A camera saves the sensor's pixels and the turn in EXIF: we must see the upright scene."""
    scene = photo(64, 64)
    scene.save(tmp_path / "upright.jpg", quality=95)
    with_orientation(scene.transpose(stored_as), tmp_path / "phone.jpg", orientation)
    want = decode_image(tmp_path / "upright.jpg", 32).astype(int)
    got = decode_image(tmp_path / "phone.jpg", 32).astype(int)
    wrong = np.asarray(scene.transpose(stored_as).resize((32, 32), Image.Resampling.BILINEAR)).astype(int)
    assert np.abs(got - want).mean() < 3          # JPEG noise only
    assert np.abs(wrong - want).mean() > 30       # not the stored (turned) pixels


def test_a_damaged_exif_block_does_not_make_the_image_unreadable(tmp_path):
    p = tmp_path / "x.jpg"
    photo().save(p, exif=b"Exif\x00\x00MM\x00*garbage")
    assert decode_image(p, 16).shape == (16, 16, 3)


# ------------------------------------------------------------------------- 16-bit

def test_a_dark_16_bit_png_stays_dark(tmp_path):
    values = np.random.default_rng(0).integers(100, 256, (32, 32)).astype(np.uint16)  # <0.4% of 65535
    (tmp_path / "dark.png").write_bytes(png16(values))
    assert Image.open(tmp_path / "dark.png").mode == "I;16"
    out = decode_image(tmp_path / "dark.png", 32)
    assert np.array_equal(out[..., 0], np.rint(values / 257).astype(np.uint8))   # 0 or 1
    assert out.max() <= 1


def test_one_bright_pixel_does_not_change_the_rest_of_a_16_bit_image(tmp_path):
    """Scaled per image, the same pixels came out bright without the one white pixel and
    black with it; scaled by the type's range, they are the same either way."""
    plain = np.random.default_rng(1).integers(0, 256, (32, 32)).astype(np.uint16)
    bright = plain.copy()
    bright[0, 0] = 65535
    (tmp_path / "plain.png").write_bytes(png16(plain))
    (tmp_path / "bright.png").write_bytes(png16(bright))
    a, b = decode_image(tmp_path / "plain.png", 32)[..., 0], decode_image(tmp_path / "bright.png", 32)[..., 0]
    assert b[0, 0] == 255
    assert np.array_equal(a[1:], b[1:]) and np.array_equal(a[0, 1:], b[0, 1:])
    assert np.array_equal(a, np.rint(plain / 257).astype(np.uint8))


def test_16_bit_values_of_an_image_with_small_numbers_are_not_stretched(tmp_path):
    """The per-image bug: an image whose values all fit in 0..255 came out at full brightness."""
    values = np.full((16, 16), 200, np.uint16)
    (tmp_path / "x.png").write_bytes(png16(values))
    assert decode_image(tmp_path / "x.png", 16).max() == 1   # 200/65535 of white


@pytest.mark.parametrize("mode, fmt", [("I;16", "TIFF"), ("I;16B", "TIFF"), ("I", "TIFF"), ("I;16", "PNG")])
def test_16_bit_modes_scale_by_65535(tmp_path, mode, fmt):
    v = np.full((8, 8), 40000, np.uint16)
    if mode == "I;16B":
        im = Image.frombytes("I;16B", (8, 8), v.astype(">u2").tobytes())
    elif mode == "I":
        im = Image.fromarray(v.astype(np.int32), "I")
    else:
        im = Image.fromarray(v)
    p = tmp_path / f"x.{fmt.lower()}"
    im.save(p, format=fmt)
    assert Image.open(p).mode == mode
    assert np.all(decode_image(p, 8) == round(40000 / 257))   # 156, as libpng scales 16 to 8 bits


def test_16_bit_rgb_png_keeps_its_brightness(tmp_path):
    v = np.zeros((16, 16, 3), np.uint16)
    v[..., 0], v[..., 1], v[..., 2] = 40000, 200, 65535
    (tmp_path / "rgb16.png").write_bytes(png16(v))
    out = decode_image(tmp_path / "rgb16.png", 16)
    assert abs(int(out[..., 0].mean()) - 156) <= 1 and out[..., 1].max() <= 1 and out[..., 2].min() == 255


# ------------------------------------------------------------------ other modes

def test_transparency_is_shown_on_white_and_other_modes_as_pillow_converts(tmp_path):
    # P with a transparent palette entry: index 0 transparent, index 1 red
    p_im = Image.new("P", (8, 8), 0)
    p_im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p_im.paste(1, (0, 0, 4, 8))
    p_im.save(tmp_path / "p.png", transparency=0)
    out = decode_image(tmp_path / "p.png", 8)
    assert out[:, :4].tolist() == [[[255, 0, 0]] * 4] * 8 and (out[:, 4:] == 255).all()
    # LA and RGBA: alpha 0 is white, alpha 255 is the colour, half alpha is half way
    Image.fromarray(np.array([[[30, 0], [30, 255]]], np.uint8), "LA").save(tmp_path / "la.png")
    assert decode_image(tmp_path / "la.png", 2, "squish")[0, :, 0].tolist() != [30, 30]
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[:, 4:, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = decode_image(tmp_path / "rgba.png", 8)
    assert (out[:, :4] == 255).all() and (out[:, 4:] == (10, 20, 30)).all()
    # CMYK, 1-bit and float: as Pillow's own convert shows them
    for mode, name in (("CMYK", "c.jpg"), ("1", "b.png"), ("F", "f.tiff")):
        src = Image.fromarray(np.random.default_rng(2).integers(0, 256, (8, 8, 3), dtype=np.uint8))
        im = src.convert(mode) if mode != "F" else Image.fromarray(
            np.linspace(-20, 300, 64, dtype=np.float32).reshape(8, 8), "F")
        im.save(tmp_path / name)
        with Image.open(tmp_path / name) as ref:
            want = np.asarray(ref.convert("RGB") if mode != "F" else ref.convert("L").convert("RGB"))
        assert np.array_equal(decode_image(tmp_path / name, 8), want), mode


# ------------------------------------------------------------------ size limits

def header_only_png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


@pytest.mark.parametrize("w, h", [(20_000, 20_000), (100_000, 100_000)])
def test_an_image_over_the_limit_is_refused_before_decoding(tmp_path, w, h):
    (tmp_path / "bomb.png").write_bytes(header_only_png(w, h))
    assert w * h > MAX_PIXELS == 300_000_000
    with pytest.raises(UnreadableImage, match=f"decompression bomb.*{w}x{h}.*over the 300 MP limit"):
        decode_image(tmp_path / "bomb.png", 32)


def test_pillows_89_megapixel_warning_is_not_an_error(tmp_path, recwarn):
    p = tmp_path / "big.jpg"
    Image.new("L", (9500, 9500), 90).save(p, quality=50)        # 90 MP, over Pillow's warning
    assert (decode_image(p, 16, channels=1) == 90).all()
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


# ------------------------------------------------------------------ odd files

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_named_jpg_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    signal.alarm(10)   # a blocking open would hang the test: fail it instead
    try:
        with pytest.raises(UnreadableImage, match="not a regular file .a FIFO"):
            decode_image(tmp_path / "pipe.jpg", 16)
    finally:
        signal.alarm(0)


def test_decode_images_reports_the_unreadable_ones_for_predict_to_skip(tmp_path):
    good = [tmp_path / "a.png", tmp_path / "c.png"]
    for i, p in enumerate(good):
        Image.new("RGB", (10, 10), (i * 200, 0, 0)).save(p)
    (tmp_path / "b.jpg").write_text("not an image")
    paths = [good[0], tmp_path / "b.jpg", good[1]]
    d = decode_images(paths, 8)
    assert d.ok.tolist() == [True, False, True] and d.images.shape == (2, 8, 8, 3)
    assert d.images[1, 0, 0, 0] == 200 and d.bad[0][0] == str(tmp_path / "b.jpg")
    line = unreadable_warning(d.bad, len(paths), tmp_path)
    assert line.startswith("skipped 1 unreadable image(s) of 3 under ") and "b.jpg (" in line
    assert "\n" not in line


def test_names_that_are_not_utf8_print_as_escapes(tmp_path):
    name = os.fsdecode(b"caf\xe9.png")
    Image.new("RGB", (10, 10)).save(tmp_path / name)
    assert decode_image(tmp_path / name, 8).shape == (8, 8, 3)
    assert printable(tmp_path / name).endswith("caf\\xe9.png")
