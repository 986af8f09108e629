"""Real photos and bombs through a real `resnette train`: a 100 MP camera JPEG and a 200 MP
phone JPEG (over both of Pillow's own limits) are decoded at the presize and trained on;
only files over the 300 MP decoded-area limit are skipped, and the warning counts them."""
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import one_error_line, run, train_args  # noqa: F401  (one_error_line: shared helpers)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height and holds no pixels: a bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("valid", 4)):
        for label, base in (("a", 60), ("b", 190)):
            (root / split / label).mkdir(parents=True)
            for i in range(n):
                px = np.clip(base + rng.normal(0, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(px).save(root / split / label / f"{i:02d}.png")
    # 100 MP RGB (over Pillow's 89 MP warning) and 201.6 MP grey (over its 179 MP error)
    Image.new("RGB", (10_000, 10_000), (200, 40, 40)).save(root / "train" / "a" / "camera.jpg", quality=90)
    Image.new("L", (14_200, 14_200), 77).save(root / "train" / "b" / "phone.jpg", quality=90)
    (root / "train" / "a" / "bomb.png").write_bytes(_png_header(100_000, 100_000))
    return root


def test_large_photos_train_and_only_the_bomb_is_skipped_and_counted(photos, tmp_path):
    home = tmp_path / "home"
    proc = run(train_args(photos, "big", "--epochs", "1"), tmp_path, home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    warning = next(line for line in proc.stderr.splitlines() if "unreadable" in line)
    assert "skipped 1 unreadable image(s) of 35" in warning, warning
    assert "train/a/bomb.png (decompression bomb? 100000x100000 is 10000 MP to decode, over the 300 MP limit)" in warning
    assert "camera.jpg" not in warning and "phone.jpg" not in warning
    # the photos were decoded at the presize into the cache the run trained from
    (entry,) = [p for p in (home / "decoded").iterdir() if p.is_dir()]
    meta = json.loads((entry / "meta.json").read_text())
    images = np.load(entry / "images.npy")
    names = sorted(str(p.relative_to(photos)) for p in photos.rglob("*.*") if p.parts[-3] == "train")
    names += sorted(str(p.relative_to(photos)) for p in photos.rglob("*.*") if p.parts[-3] == "valid")
    assert [names[i] for i, _ in meta["bad"]] == ["train/a/bomb.png"]
    camera, phone = names.index("train/a/camera.jpg"), names.index("train/b/phone.jpg")
    assert np.abs(images[camera].astype(int) - (200, 40, 40)).max() <= 2
    assert np.abs(images[phone].astype(int) - 77).max() <= 2
    assert (tmp_path / "runs" / "big" / "model.safetensors").exists()
