"""Batch augmentation: the chapter's `aug_transforms(min_scale=0.5, size=...)`, one resampling.

fastai applies, to a batch of presized images on the device:
  flip (p 0.5), perspective warp 0.2, rotation up to 10 degrees, zoom 1..1.1 (each p 0.75),
  composed into one affine grid plus a warp of its coordinates, then a separate random
  resized crop to `size`, then brightness and contrast 0.2 (each p 0.75) in logit space.
We draw every parameter per image, and fold the crop into the same grid, so each output
pixel is sampled from the presized uint8 image exactly once:

    grid(u) = warp(A . crop(u)),   A = flip @ rotate @ zoom

`crop` maps the output square onto a random sub-square (area min_scale..1): fastai's
aug_transforms passes ratio=(1, 1) to its RandomResizedCropGPU, and the chapter's numbers
were made that way (with aspect 3/4..4/3, torchvision's habit, one 5-epoch resblock_cnn
run here landed 3.8 points under the book's number). `AugmentConfig(ratio=(3/4, 4/3))` restores
it. fastai draws one crop per batch; we draw one per image, which is never worse. Parameters
are drawn on the CPU from a generator the caller seeds, then moved to the batch's device, so
the same seed gives the same batch on any device. Lighting is one 256-entry table per image
applied while converting uint8 to float (see `lighting_table`); ImageNet normalisation is one
multiply-add after the resampling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class AugmentConfig:
    """fastai's aug_transforms defaults, with the chapter's min_scale=0.5."""

    min_scale: float = 0.5          # the crop keeps at least half the image's area
    ratio: tuple[float, float] = (1.0, 1.0)  # fastai's aug_transforms: square crops
    do_flip: bool = True            # horizontal flip with p 0.5
    max_rotate: float = 10.0        # degrees
    min_zoom: float = 1.0
    max_zoom: float = 1.1
    max_warp: float = 0.2           # corner displacement, in units of half the image
    p_affine: float = 0.75          # each of warp, rotate, zoom is applied with this p
    max_lighting: float = 0.2
    p_lighting: float = 0.75        # each of brightness, contrast
    pad_mode: str = "reflection"    # what the grid sees outside the image after rotation

    @classmethod
    def named(cls, style: str | bool, min_scale: float = 0.5) -> "AugmentConfig | None":
        """`True`/"chapter": aug_transforms as above; "crop_flip": the random resized crop and
        the flip only (the Imagenette leaderboard's augmentation: short runs learn faster
        without rotation, warp and lighting, see docs/RECIPES.md); `False`: none."""
        if style is False or style is None:
            return None
        if style is True or style == "chapter":
            return cls(min_scale=min_scale)
        if style == "crop_flip":
            return cls(min_scale=min_scale, max_rotate=0.0, max_zoom=1.0, max_warp=0.0,
                       p_affine=0.0, max_lighting=0.0, p_lighting=0.0)
        raise ValueError(f"unknown augmentation {style!r}; choose chapter or crop_flip")


def draw_params(n: int, cfg: AugmentConfig, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-image random parameters, drawn in a fixed order from `gen` (CPU, float64)."""
    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=gen, dtype=torch.float64) * (hi - lo) + lo

    def mask(p: float) -> torch.Tensor:
        return torch.rand(n, generator=gen, dtype=torch.float64) < p

    # Random resized crop: 10 tries per image as in torchvision/fastai; the first that fits wins,
    # else the whole image (square presize, and the ratio range contains 1).
    tries = 10
    area = torch.rand(n, tries, generator=gen, dtype=torch.float64) * (1 - cfg.min_scale) + cfg.min_scale
    lo, hi = math.log(cfg.ratio[0]), math.log(cfg.ratio[1])
    ratio = torch.exp(torch.rand(n, tries, generator=gen, dtype=torch.float64) * (hi - lo) + lo)
    w, h = (area * ratio).sqrt(), (area / ratio).sqrt()
    fits = (w <= 1) & (h <= 1)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((n,), -1))
    pick = first.clamp(min=0)[:, None]
    cw = torch.where(first >= 0, w.gather(1, pick)[:, 0], torch.ones(n, dtype=torch.float64))
    ch = torch.where(first >= 0, h.gather(1, pick)[:, 0], torch.ones(n, dtype=torch.float64))
    cx, cy = u(-1, 1) * (1 - cw), u(-1, 1) * (1 - ch)

    flip = torch.where(mask(0.5), -1.0, 1.0) if cfg.do_flip else torch.ones(n, dtype=torch.float64)
    deg = torch.where(mask(cfg.p_affine), u(-cfg.max_rotate, cfg.max_rotate), 0.0)
    scale = 1 / torch.where(mask(cfg.p_affine), u(cfg.min_zoom, cfg.max_zoom), 1.0)
    col, row = u(0, 1), u(0, 1)
    warp_x = torch.where(mask(cfg.p_affine), u(-cfg.max_warp, cfg.max_warp), 0.0)
    warp_y = torch.where(mask(cfg.p_affine), u(-cfg.max_warp, cfg.max_warp), 0.0)
    lo_b, hi_b = 0.5 * (1 - cfg.max_lighting), 0.5 * (1 + cfg.max_lighting)
    bright = torch.where(mask(cfg.p_lighting), u(lo_b, hi_b), 0.5)
    c_lim = -math.log(1 - cfg.max_lighting)
    contrast = torch.where(mask(cfg.p_lighting), torch.exp(u(-c_lim, c_lim)), 1.0)
    return dict(cw=cw, ch=ch, cx=cx, cy=cy, flip=flip, deg=deg, scale=scale, col=col, row=row,
                warp_x=warp_x, warp_y=warp_y, bright=bright, contrast=contrast)


def affine_matrix(p: dict[str, torch.Tensor]) -> torch.Tensor:
    """flip @ rotate @ zoom as N,3,3 (fastai's order), in normalised [-1, 1] coordinates."""
    n = p["flip"].shape[0]
    eye = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
    flip = eye.clone()
    flip[:, 0, 0] = p["flip"]
    th = p["deg"] * math.pi / 180
    rot = eye.clone()
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = th.cos(), th.sin(), -th.sin(), th.cos()
    s = p["scale"]
    zoom = eye.clone()
    zoom[:, 0, 0], zoom[:, 1, 1] = s, s
    zoom[:, 0, 2], zoom[:, 1, 2] = (1 - s) * (2 * p["col"] - 1), (1 - s) * (2 * p["row"] - 1)
    return flip @ rot @ zoom


def warp_homography(p: dict[str, torch.Tensor]) -> torch.Tensor:
    """fastai's Warp: the homography taking the moved corners back to the square's corners."""
    x, y = p["warp_x"], p["warp_y"]
    orig = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
    orig = orig.expand(x.shape[0], 4, 2)
    targ = torch.stack([torch.stack([-1 - y, -1 - x], 1), torch.stack([-1 + y, 1 + x], 1),
                        torch.stack([1 + y, -1 + x], 1), torch.stack([1 - y, 1 - x], 1)], 1)
    # Solve for H (8 unknowns, h33 = 1) with H(targ_i) = orig_i for the four corners.
    rows, rhs = [], []
    zero, one = torch.zeros_like(x), torch.ones_like(x)
    for i in range(4):
        tx, ty, ox, oy = targ[:, i, 0], targ[:, i, 1], orig[:, i, 0], orig[:, i, 1]
        rows.append(torch.stack([tx, ty, one, zero, zero, zero, -ox * tx, -ox * ty], 1))
        rows.append(torch.stack([zero, zero, zero, tx, ty, one, -oy * tx, -oy * ty], 1))
        rhs += [ox, oy]
    coeffs = torch.linalg.solve(torch.stack(rows, 1), torch.stack(rhs, 1))
    return torch.cat([coeffs, one[:, None]], 1).view(-1, 3, 3)


def sampling_grid(p: dict[str, torch.Tensor], size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """N,size,size,2 source coordinates (x, y) in [-1, 1] for grid_sample, float32, on `device`.

    Only the N 3x3 matrices cross to the device; the grid (16 MB at bs 128, 128 px) is built there.
    """
    n = p["flip"].shape[0]
    # crop: the output square -> a sub-rectangle of the (flipped, rotated, zoomed) image
    crop = torch.zeros(n, 3, 3, dtype=torch.float64)
    crop[:, 0, 0], crop[:, 0, 2] = p["cw"], p["cx"]
    crop[:, 1, 1], crop[:, 1, 2] = p["ch"], p["cy"]
    crop[:, 2, 2] = 1
    # fastai warps the affine grid's homogeneous coordinates, H @ (A @ c): both are 3x3
    # matrices, so the whole chain is one matrix per image and one divide per pixel.
    h = (warp_homography(p) @ affine_matrix(p) @ crop).float().to(device, non_blocking=True)
    lin = torch.linspace(-1, 1, size, device=device)
    gx, gy = lin.view(1, 1, size), lin.view(1, size, 1)
    # Row r of H times (x, y, 1): an outer sum of a row vector and a column vector per image,
    # far cheaper than a matmul over every pixel; results go straight into the (x, y) slots.
    x, y, w = ((gx * h[:, r, 0, None, None] + h[:, r, 2, None, None]) + gy * h[:, r, 1, None, None]
               for r in range(3))
    grid = torch.empty(n, size, size, 2, device=device)
    w = w.reciprocal_()
    torch.mul(x, w, out=grid[..., 0])
    torch.mul(y, w, out=grid[..., 1])
    return grid


def lighting_table(bright: torch.Tensor, contrast: torch.Tensor) -> torch.Tensor:
    """N,256 float32: what each uint8 value becomes after the image's lighting, in [0, 1].

    fastai's lighting is sigmoid((logit(v) + logit(b)) * c) on each pixel value v in [0, 1].
    It depends on the pixel alone, so for one image it is a table of 256 entries: looking
    it up replaces the uint8->float conversion and costs one pass instead of eight
    transcendental passes over the output. We apply it to the source pixels, before the
    bilinear resampling (fastai applies it after): identical at the pixels, and in between
    the blend of lit values differs from lighting the blend by a fraction of a grey level
    except at hard edges. The neutral b = 0.5, c = 1 gives v itself exactly.
    """
    v = torch.arange(256, dtype=torch.float64) / 255
    vc = v.clamp(1e-7, 1 - 1e-7)
    logit_v = torch.log(vc / (1 - vc)).view(1, 256)
    logit_b = torch.log(bright / (1 - bright)).view(-1, 1)
    y = torch.sigmoid((logit_v + logit_b) * contrast.view(-1, 1))
    neutral = ((bright == 0.5) & (contrast == 1)).view(-1, 1)
    return torch.where(neutral, v.view(1, 256), y).float()


def apply_table(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """uint8 N,H,W,C + table N,256 -> float32 N,C,H,W (channels-last memory) on x's device."""
    n, h, w, c = x.shape
    if x.device.type == "cpu":
        # One contiguous take per image; mode="clip" skips the bounds check (uint8 < 256).
        # NumPy releases the GIL here, so a caller's threads can run it beside other work.
        xs, ts = x.numpy(), table.numpy()
        out = np.empty((n, h, w, c), dtype=np.float32)
        for i in range(n):
            np.take(ts[i], xs[i], out=out[i], mode="clip")
        return torch.from_numpy(out).permute(0, 3, 1, 2)
    idx = x.reshape(n, h * w * c).long()
    out = torch.gather(table.to(x.device, non_blocking=True), 1, idx)
    return out.view(n, h, w, c).permute(0, 3, 1, 2)


def normalize_(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """(x * scale - mean) / std per channel, as one multiply-add pass."""
    mean, std = mean.to(x.device).view(1, -1, 1, 1), std.to(x.device).view(1, -1, 1, 1)
    return torch.addcmul(-mean / std, x, scale / std, out=x)  # in place: no second batch in memory


def augment_batch(x: torch.Tensor, size: int, cfg: AugmentConfig, gen: torch.Generator,
                  mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 N,P,P,C (any device) -> float32 N,C,size,size augmented and normalised."""
    p = draw_params(x.shape[0], cfg, gen)
    src = apply_table(x, lighting_table(p["bright"], p["contrast"]))
    grid = sampling_grid(p, size, x.device)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode=cfg.pad_mode, align_corners=True)
    del src, grid  # free the float source before the next allocation: keeps the peak low
    return normalize_(out, mean, std)


def resize_batch(x: torch.Tensor, size: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Validation: the whole presized (square) image resized to `size`, normalised; no randomness.

    Plain bilinear, no antialiasing, like fastai's batch-time resize (and like the training
    resampling, so train and valid see the same kind of pixels); 4x cheaper on the CPU.
    """
    out = x.permute(0, 3, 1, 2).float()
    if x.shape[1] != size:
        out = F.interpolate(out, size=(size, size), mode="bilinear", antialias=False,
                            align_corners=False)
    return normalize_(out, mean, std, scale=1 / 255)
