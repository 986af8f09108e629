"""Write the interop records that tests/test_interop.py checks resnette's name maps against.

timm 1.0.31 and fastai 2.8.12 both import torchvision when they are imported (timm for
`torchvision.ops.misc.FrozenBatchNorm2d`, fastai for its torchvision model zoo), and
torchvision cannot be installed beside this project's torch, so CI cannot run them. They
were run once, here, in a separate virtual environment that has them:

    PYTHONPATH=/path/to/timm:/path/to/safetensors:. /work/venv-fastai/bin/python \
        tests/data/make_interop_records.py

(/work/venv-fastai: torch 2.13.0+cpu, torchvision 0.28.0, fastai 2.8.12; timm 1.0.31 and
safetensors installed with `pip install --no-deps --target`.) It writes, from the real
libraries' own modules:

- interop_keys.json: every state-dict key and shape of each counterpart model we claim
  (timm.create_model(name), fastai's xresnet functions), 1000 classes, 3 channels;
- fastai_xresnet18_keys.txt: fastai's xresnet18 keys and shapes, one a line;
- interop_equivalence.json: for every claimed pair, their randomly initialised model (with
  random batchnorm statistics and gammas, so no zero-init hides a wrong map) loaded into
  ours through the map and back: the largest output difference on a fixed batch, eval mode;
- interop_tiny.safetensors: narrow models of the same module trees (timm ResNet-D basic and
  bottleneck, fastai XResNet basic and SE-ResNeXt) with their weights, a fixed input and
  their own outputs, so CI re-checks the map numerically without timm or fastai.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

import fastai  # noqa: E402
import timm  # noqa: E402
from fastai.layers import ResBlock, SEResNeXtBlock  # noqa: E402
from fastai.vision.models import xresnet as fx  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from timm.models.resnet import BasicBlock, Bottleneck, ResNet  # noqa: E402

from resnette.models import create_model  # noqa: E402
from resnette.models.interop import COUNTERPARTS, from_format, to_format  # noqa: E402


def theirs(fmt: str, name: str, **kw) -> torch.nn.Module:
    return timm.create_model(name, **kw) if fmt == "timm" else getattr(fx, name)(**kw)


def randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter and batchnorm statistic random (zero-init gammas included), at scales
    that keep a deep net's logits moderate (gammas in [0.2, 0.6])."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.dtype.is_floating_point:
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif t.ndim == 1 and name.endswith("weight"):   # batchnorm gammas
                t.copy_(torch.rand(t.shape, generator=g) * 0.4 + 0.2)
            elif t.ndim == 1:   # betas, biases, running means
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / max(1, t[0].numel())) ** 0.5)
    return model.eval()


def round_trip(fmt: str, ours_model, their_model, x) -> dict:
    """Theirs -> ours -> theirs again: output differences (eval mode, no grad)."""
    ours_model.load_state_dict(from_format(ours_model, their_model.state_dict(), fmt, "record"))
    ours_model.eval()
    with torch.no_grad():
        ref = their_model(x)
        got = ours_model(x)
        again = randomise(their_model, 999)   # scramble, then load ours back
        again.load_state_dict(to_format(ours_model.state_dict(), fmt), strict=True)
        back_out = again(x)
    return {"ours_vs_theirs": float((got - ref).abs().max()),
            "back_vs_theirs": float((back_out - ref).abs().max()),
            "logit_scale": float(ref.abs().max())}


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 72, 72)   # 72 px: 36, 18, 9, 5, 3 px grids, odd sizes in the shortcut pools
    keys, equivalence = {}, {}
    for fmt, pairs in COUNTERPARTS.items():
        keys[fmt] = {}
        for ours, name in pairs.items():
            model = randomise(theirs(fmt, name), 1)
            keys[fmt][name] = [[k, list(v.shape)] for k, v in model.state_dict().items()]
            equivalence[f"{fmt}:{name}<->{ours}"] = round_trip(fmt, create_model(ours), model, x)
            print(fmt, name, ours, equivalence[f"{fmt}:{name}<->{ours}"], flush=True)
    versions = {"timm": timm.__version__, "fastai": fastai.__version__, "torch": torch.__version__,
                "date": time.strftime("%Y-%m-%d"), "input": "torch.manual_seed(0); randn(2, 3, 72, 72)"}
    (HERE / "interop_keys.json").write_text(json.dumps({"versions": versions, **keys}) + "\n")
    (HERE / "interop_equivalence.json").write_text(
        json.dumps({"versions": versions, "max_abs_diff": equivalence}, indent=1) + "\n")
    lines = [f"# fastai {fastai.__version__}: fastai.vision.models.xresnet.xresnet18() "
             "(1000 classes, 3 channels), its state_dict keys and shapes, written by",
             "# tests/data/make_interop_records.py"]
    lines += [f"{k} {tuple(s)}" for k, s in keys["fastai"]["xresnet18"]]
    (HERE / "fastai_xresnet18_keys.txt").write_text("\n".join(lines) + "\n")

    tiny = {  # narrow models, the same module trees: (theirs, our arch, our options)
        "timm_basic": (ResNet(BasicBlock, [1, 2, 1, 1], num_classes=5, stem_width=4, stem_type="deep",
                              avg_down=True, channels=(8, 16, 32, 64)), "xresnet18",
                       dict(n_out=5, stem=(4, 4, 8), widen=0.125)),
        "timm_bottleneck": (ResNet(Bottleneck, [1, 1, 2, 1], num_classes=5, stem_width=4,
                                   stem_type="deep", avg_down=True, channels=(8, 16, 32, 64),
                                   cardinality=2, base_width=16), "xresnext50",
                            dict(n_out=5, stem=(4, 4, 8), widen=0.125, groups=2, base_width=16)),
        # fastai's first stage takes 64 channels whatever the stem's width: its stem ends at 64
        "fastai_basic": (fx.XResNet(ResBlock, 1, [1, 2, 1, 1], n_out=5, stem_szs=(4, 4, 64),
                                    widen=0.125), "xresnet18", dict(n_out=5, stem=(4, 4, 64), widen=0.125)),
        "fastai_se": (fx.XResNet(SEResNeXtBlock, 4, [1, 1, 2, 1], n_out=5, stem_szs=(4, 4, 64),
                                 widen=0.125, groups=4, reduction=16, base_width=16), "xse_resnext50",
                      dict(n_out=5, stem=(4, 4, 64), widen=0.125, groups=4, base_width=16)),
    }
    tensors, meta = {"input": x.contiguous()}, {}
    for label, (model, arch, opts) in tiny.items():
        model = randomise(model, 2)
        with torch.no_grad():
            tensors[f"{label}/output"] = model(x).contiguous()
        for k, v in model.state_dict().items():
            tensors[f"{label}/{k}"] = v.contiguous()
        meta[label] = json.dumps({"arch": arch, "options": opts})
    save_file(tensors, str(HERE / "interop_tiny.safetensors"), metadata={**meta, **{
        k: str(v) for k, v in versions.items()}})
    (HERE / "interop_tiny.safetensors").chmod(0o644)
    print("wrote", *(p.name for p in HERE.glob("interop*")), "fastai_xresnet18_keys.txt")


if __name__ == "__main__":
    main()
