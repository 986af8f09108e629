"""scikit-learn's 8x8 handwritten digits: a dataset that needs no download, for quick runs.

1,797 images, values 0..16, upscaled to 32 px (the smallest size at which a 5-stride-2 net
still has a 1x1 map at the end) and served through the same Loader as any folder.
"""
from __future__ import annotations

import gzip
import io
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from resnette.data.arrays import from_arrays
from resnette.data.loaders import DataLoaders
from resnette.files import open_read, output, write_bytes
from resnette.utils import ResnetteError

DIGITS_SIZE = 32


def digits(size: int = DIGITS_SIZE, bs: int = 64, valid_pct: float = 0.2, seed: int = 0,
           channels: int = 3, presize: int | None = None, **kwargs) -> DataLoaders:
    """DataLoaders over sklearn's digits: seeded `valid_pct` split, labels "0".."9"."""
    if channels not in (1, 3):
        raise ResnetteError(f"channels must be 1 or 3, got {channels}")
    presize = presize or max(DIGITS_SIZE, size)
    kwargs.pop("cache_dir", None)  # nothing to cache: the digits live in memory
    kwargs.pop("method", None)
    pixels, target = _load_digits()
    small = np.round(pixels * (255 / 16)).astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(im).resize((presize, presize), Image.Resampling.BILINEAR))
                    for im in small])
    images = np.repeat(big[..., None], channels, axis=-1)
    labels = target.astype(np.int64)
    n = len(labels)
    is_valid = valid_mask(n, valid_pct, seed)
    items = [f"digits/{i:04d}" for i in range(n)]
    vocab = [str(d) for d in range(10)]
    return from_arrays(images, labels, items, is_valid, ~is_valid, vocab, vocab, size=size, bs=bs,
                       seed=seed, **kwargs)


def valid_mask(n: int, valid_pct: float, seed: int) -> np.ndarray:
    """Which of the `n` digits are the validation set: a seeded random `valid_pct`."""
    is_valid = np.zeros(n, dtype=bool)
    is_valid[np.random.default_rng(seed).permutation(n)[: int(round(n * valid_pct))]] = True
    return is_valid


def save_samples(folder: str | Path, valid_pct: float = 0.2, seed: int = 0) -> list[Path]:
    """One validation digit of each class as a 32 px PNG, `<digit>-<index>.png`, in `folder`:
    something to try `resnette predict` on that the model has not trained on (the split of
    `digits(valid_pct=, seed=)`, i.e. the run's own). These are scikit-learn's 8x8 scans,
    upscaled: what the digits model knows; photos of handwriting (MNIST) look different."""
    pixels, target = _load_digits()
    folder = output(folder, "predict --sample", makes_parents=True, folder=True)
    folder.mkdir(parents=True, exist_ok=True)
    valid = np.flatnonzero(valid_mask(len(target), valid_pct, seed))
    written = []
    for digit in range(10):
        i = next(int(j) for j in valid if target[j] == digit)
        small = Image.fromarray(np.round(pixels[i] * (255 / 16)).astype(np.uint8))
        path = folder / f"{digit}-{i:04d}.png"
        png = io.BytesIO()   # written through the gate: a link in its place is replaced, not followed
        small.resize((DIGITS_SIZE, DIGITS_SIZE), Image.Resampling.BILINEAR).save(png, format="PNG")
        write_bytes(path, png.getvalue())
        written.append(path)
    return written


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images 1797x8x8 float, targets) as sklearn's `load_digits` returns them, read from the
    CSV file scikit-learn ships, without importing scikit-learn (and SciPy): ~2 s of a
    command's start on a small CPU (issue 13)."""
    spec = importlib.util.find_spec("sklearn")   # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ResnetteError("the digits dataset needs scikit-learn: pip install 'resnette[digits]'")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():   # another layout: ask scikit-learn itself
        from sklearn.datasets import load_digits
        bunch = load_digits()
        return bunch.images, bunch.target
    with open_read(path, "digits data") as raw, gzip.GzipFile(fileobj=raw) as f:
        data = np.loadtxt(io.TextIOWrapper(f, encoding="utf-8"), delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
