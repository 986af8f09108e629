"""The fastai book's chapter 14 XResNet-18 run, with fastai itself: the yardstick for resnette.

    python benchmarks/fastai_book.py --data .gpu_data/imagenette-128 --out fastai.json
                                     [--presize 128 --size 128 --epochs 5 --lr 3e-3]

What the chapter does (its `get_data`, `ResNet(dls.c, [2,2,2,2])` and
`Learner(...).fit_one_cycle(5, 3e-3)`), plus `to_fp16()`, which is how anyone runs it on a
GPU. The model is the chapter's own listing (its stem, `_conv_block`, `ResBlock` and
`ResNet` classes), not fastai's library `xresnet18`, so the comparison is with what a reader
of the book runs. Data: the same folder resnette reads (train/ and val/); the chapter's
`Resize(160)` becomes `Resize(presize)` because the GPU machine's compact copy is 128 px.
Writes per-epoch rows (train_loss, valid_loss, accuracy, time incl. validation, as in
fastai's table), the time to build the DataLoaders and to fit, into --out as JSON.
Needs fastai (benchmarks/gpu.sh installs it offline from .gpu_wheels).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

T0 = time.perf_counter()

from fastai.vision.all import (CategoryBlock, Callback, ConvLayer, DataBlock, GrandparentSplitter,  # noqa: E402
                               ImageBlock, Learner, Normalize, NormType, Resize, accuracy,
                               aug_transforms, get_image_files, imagenet_stats, parent_label)
import fastai  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

IMPORT_S = time.perf_counter() - T0


# ---- the chapter's model ----------------------------------------------------------------
def conv_block(ni: int, nf: int, stride: int) -> nn.Sequential:
    return nn.Sequential(ConvLayer(ni, nf, stride=stride),
                         ConvLayer(nf, nf, act_cls=None, norm_type=NormType.BatchZero))


class ResBlock(nn.Module):
    def __init__(self, ni: int, nf: int, stride: int = 1) -> None:
        super().__init__()
        self.convs = conv_block(ni, nf, stride)
        self.idconv = nn.Identity() if ni == nf else ConvLayer(ni, nf, 1, act_cls=None)
        self.pool = nn.Identity() if stride == 1 else nn.AvgPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.convs(x) + self.idconv(self.pool(x)))


def resnet_stem(*sizes: int) -> list[nn.Module]:
    return [ConvLayer(sizes[i], sizes[i + 1], 3, stride=2 if i == 0 else 1) for i in range(len(sizes) - 1)] \
        + [nn.MaxPool2d(kernel_size=3, stride=2, padding=1)]


class ResNet(nn.Sequential):
    def __init__(self, n_out: int, layers: list[int], expansion: int = 1) -> None:
        szs = [64, 64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion]
        blocks = []
        for idx, n in enumerate(layers):
            stride = 1 if idx == 0 else 2
            ch_in, ch_out = szs[idx], szs[idx + 1]
            blocks.append(nn.Sequential(*[ResBlock(ch_in if i == 0 else ch_out, ch_out, stride if i == 0 else 1)
                                          for i in range(n)]))
        super().__init__(*resnet_stem(3, 32, 32, 64), *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(szs[-1], n_out))


class EpochTimes(Callback):
    """Seconds per epoch, training plus validation (fastai's table's `time` column)."""

    order = 100

    def before_fit(self) -> None:
        self.times: list[float] = []

    def before_epoch(self) -> None:
        self.start = time.perf_counter()

    def after_epoch(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--presize", type=int, default=128)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--bs", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--workers", type=int, default=None, help="loader workers (default: fastai's, up to 16)")
    args = ap.parse_args()
    valid = "val" if (args.data / "val").is_dir() else "valid"
    t = time.perf_counter()
    dls = DataBlock(
        blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
        splitter=GrandparentSplitter(valid_name=valid), get_y=parent_label,
        item_tfms=Resize(args.presize),
        batch_tfms=[*aug_transforms(min_scale=0.5, size=args.size), Normalize.from_stats(*imagenet_stats)],
    ).dataloaders(args.data, bs=args.bs, num_workers=args.workers)
    dls_s = time.perf_counter() - t
    timer = EpochTimes()
    learn = Learner(dls, ResNet(dls.c, [2, 2, 2, 2]), loss_func=nn.CrossEntropyLoss(), metrics=accuracy,
                    cbs=[timer])
    if torch.cuda.is_available():
        learn = learn.to_fp16()
    t = time.perf_counter()
    learn.fit_one_cycle(args.epochs, args.lr)
    fit_s = time.perf_counter() - t
    rows = [dict(epoch=i, train_loss=float(v[0]), valid_loss=float(v[1]), accuracy=float(v[2]), time=timer.times[i])
            for i, v in enumerate(learn.recorder.values)]
    res = dict(fastai=fastai.__version__, torch=torch.__version__,
               device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
               fp16=torch.cuda.is_available(), workers=dls.train.num_workers, n_train=len(dls.train_ds),
               n_valid=len(dls.valid_ds), import_s=IMPORT_S, dls_s=dls_s, fit_s=fit_s, epochs=rows,
               accuracy=rows[-1]["accuracy"] if rows else None, process_s=time.perf_counter() - T0,
               args={k: str(v) for k, v in vars(args).items()})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    print(f"fastai {fastai.__version__}: {len(rows)} epochs, fit {fit_s:.1f} s, epochs "
          f"{[round(r['time'], 1) for r in rows]} s, accuracy {res['accuracy']:.4f}; "
          f"imports {IMPORT_S:.1f} s, DataLoaders {dls_s:.1f} s")


if __name__ == "__main__":
    main()
