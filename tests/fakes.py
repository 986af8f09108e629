"""Test helpers (not tests): a tiny in-memory DataLoaders that follows docs/DESIGN.md's data/
contract, and a tiny net, for the train tests; `image_folder`, a tiny folder of PNGs on disk
for the tests that go through the data layer or the command line.

Three classes of 16x16 images, each class a bright square in its own colour plus noise: a
small conv net learns it in a few epochs on the CPU in well under a second.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn


class FakeLoader:
    """Iterable of (x, y) batches; batches of epoch e depend only on (seed, e)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, bs: int, train: bool, seed: int = 0):
        self.x, self.labels, self.bs, self.train, self.seed = x, y, bs, train, seed
        self.size = x.shape[-1]
        self.device = "cpu"
        self.channels_last = False
        self.epoch, self.skip = 0, 0
        self.sizes_seen: list[int] = []
        self.on_batch = None    # tests hook in here to simulate a crash or a signal

    @property
    def n(self) -> int:
        return len(self.labels)

    def __len__(self) -> int:
        return self.n // self.bs if self.train else -(-self.n // self.bs)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        order = torch.randperm(self.n, generator=g) if self.train else torch.arange(self.n)
        flips = torch.rand(self.n, generator=g) < 0.5
        self.sizes_seen.append(self.size)
        for b in range(self.skip, len(self)):
            idx = order[b * self.bs:(b + 1) * self.bs]
            x = self.x[idx]
            if self.train:
                x = torch.where(flips[idx, None, None, None], x.flip(3), x)
            if self.size != x.shape[-1]:
                x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.on_batch is not None:
                self.on_batch(self.epoch, b)
            yield x, self.labels[idx]
        self.skip = 0


class FakeDataLoaders:
    def __init__(self, n_train: int = 96, n_valid: int = 40, bs: int = 16, c: int = 3, seed: int = 0):
        g = torch.Generator().manual_seed(1234)
        self.vocab = [f"class{i}" for i in range(c)]
        self.names, self.c, self.channels = list(self.vocab), c, 3
        self.mean, self.std, self.size, self.presize = [0.0] * 3, [1.0] * 3, 16, 16
        xt, yt = make_images(n_train, c, g)
        xv, yv = make_images(n_valid, c, g)
        self.train = FakeLoader(xt, yt, bs, True, seed)
        self.valid = FakeLoader(xv, yv, bs, False, seed)


def make_images(n: int, c: int, g: torch.Generator):
    y = torch.arange(n) % c
    x = torch.randn(n, 3, 16, 16, generator=g) * 0.5
    for k in range(c):
        x[y == k, k % 3, 4:12, 4:12] += 1.0 + k // 3
    return x, y


def tiny_net(c: int = 3) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, c))


def image_folder(root: Path, n_train: int = 4, n_valid: int = 2, classes=("cat", "dog"),
                 size: int = 48, levels: tuple[int, ...] | None = None) -> Path:
    """`<root>/{train,valid}/<class>/<i>.png`, seeded. Random pixels by default; with `levels`
    (one grey level per class) each class is its level plus noise, which a net learns in an
    epoch or two."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("valid", n_valid)):
        for k, c in enumerate(classes):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                if levels is None:
                    px = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                else:
                    px = np.clip(levels[k] + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(px).save(root / split / c / f"{i}.png")
    return root


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def rendered_images(page: str, tmp_path: Path) -> tuple[int, int]:
    """Open the HTML text `page` in headless Chromium (CHROMIUM must be installed) and count
    its images that decoded (naturalWidth > 0): (decoded, all)."""
    probe = tmp_path / "probe.html"
    check = ("<script>window.addEventListener('load', () => { const i = [...document.images];"
             " document.body.dataset.rendered = i.filter(x => x.complete && x.naturalWidth > 0)"
             ".length + '/' + i.length; });</script>")
    probe.write_text(page.replace("</body>", check + "</body>"))
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=5000",
         "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=60)
    found = re.search(r'data-rendered="(\d+)/(\d+)"', out.stdout)
    assert found, out.stderr[-2000:]
    return int(found[1]), int(found[2])
