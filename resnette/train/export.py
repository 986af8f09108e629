"""Weights by name (`learn.save`/`learn.load`) and a Learner exported for inference
(`learn.export`/`load_learner`): safetensors and TOML only, so loading can never run code.

fastai pickles the whole Learner; a pickle runs whatever code it names when loaded. Here an
export is a folder of two plain files:

    model.safetensors   the weights worth keeping (the EMA's when on)
    learner.toml        the architecture's registry name and options, the class names and the
                        input normalisation: everything `load_learner` needs to rebuild it

so only models built by resnette's registry (`create_model`, `resnette.models.*`) export.
`load_learner` (train/exported.py) reads it back.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load, save as safetensors_bytes

from ..files import read_bytes, write_bytes, write_text
from ..models.weights import check_finite_state
from ..utils import ResnetteError
from .checkpoints import check_compatible, save_weights

FORMAT = "resnette-export-1"


# ---- save / load by name ---------------------------------------------------------------------
def named_path(learn, name: str) -> Path:
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ResnetteError(f"learn.save/load take a name such as 'stage1', got {name!r}")
    return learn.path / learn.model_dir / f"{name}.safetensors"


def save_named(learn, name: str, with_opt: bool = True) -> Path:
    """path/models/<name>.safetensors: `model.*` tensors, and with `with_opt` the optimizer's
    tensors (`opt.<param>.<key>`) with its other numbers as JSON in the file's metadata."""
    tensors = {f"model.{k}": v for k, v in learn.model.state_dict().items()}
    meta = {"format": FORMAT}
    if with_opt:
        sd = learn.opt.state_dict()
        plain: dict[str, dict[str, Any]] = {}
        for pid, state in sd["state"].items():
            for key, value in state.items():
                if torch.is_tensor(value):
                    tensors[f"opt.{pid}.{key}"] = value
                else:
                    plain.setdefault(str(pid), {})[key] = value
        meta.update(opt_groups=json.dumps(sd["param_groups"]), opt_plain=json.dumps(plain))
    data = safetensors_bytes({k: v.detach().contiguous().cpu().clone() for k, v in tensors.items()},
                             metadata=meta)
    return write_bytes(named_path(learn, name), data)


def load_named(learn, name: str, with_opt: bool = True) -> None:
    path = named_path(learn, name)
    tensors, meta = read_safetensors(path)
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    check_compatible(learn.model, weights, str(path))
    if with_opt:   # before anything is loaded: a refused file leaves `learn` as it was
        check_finite_state({k: v for k, v in tensors.items() if k.startswith("opt.")},
                           str(path), "optimizer state")
    learn.model.load_state_dict(weights)
    if with_opt and "opt_groups" in meta:
        state: dict[int, dict[str, Any]] = {int(p): dict(v)
                                            for p, v in json.loads(meta["opt_plain"]).items()}
        for key, value in tensors.items():
            if key.startswith("opt."):
                _, pid, name_ = key.split(".", 2)
                state.setdefault(int(pid), {})[name_] = value
        learn.opt.load_state_dict({"state": state, "param_groups": json.loads(meta["opt_groups"])})


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise ResnetteError(f"no saved weights at {path}; save them first (learn.save(name))")
    try:
        data = read_bytes(path, "weights file")
        tensors = safetensors_load(data)
        from safetensors import safe_open   # the metadata, without reading the tensors again
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise ResnetteError(f"cannot read {path} ({type(e).__name__}); it is damaged or not "
                            "a safetensors file") from None
    return tensors, meta


# ---- export / load_learner --------------------------------------------------------------------
def export(learn, folder: Path) -> Path:
    """Write `folder`/model.safetensors and `folder`/learner.toml; returns the folder."""
    created = getattr(learn.model, "resnette_arch", None)
    if created is None:
        raise ResnetteError("export needs a model built by resnette's registry (create_model("
                            "'xresnet18', n_out=...) or resnette.models.*); save the weights of "
                            "any other model with learn.save(name)")
    dls = learn.dls
    info = {"format": FORMAT, "arch": dict(created),
            "data": {"vocab": list(dls.vocab), "names": list(getattr(dls, "names", dls.vocab)),
                     "mean": [float(m) for m in dls.mean], "std": [float(s) for s in dls.std],
                     "channels": int(getattr(dls, "channels", len(dls.mean))),
                     "size": int(getattr(dls.valid, "size", dls.size))},
            "learner": {"metrics": list(learn.metrics), "precision": learn.precision}}
    text = _toml(info)
    save_weights(folder / "model.safetensors", learn.kept_model)
    write_text(folder / "learner.toml", text)
    return folder


def _toml(info: dict[str, Any]) -> str:
    """A two-level dict of strings, numbers, booleans and lists as TOML (JSON's string escapes
    are TOML's; a name that is not UTF-8 is kept with backslash escapes)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v.encode("utf-8", "backslashreplace").decode("utf-8"))
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise ResnetteError(f"export cannot record the model option {v!r} (only text, numbers, "
                            "booleans and lists of them)")
    lines = [f"format = {value(info['format'])}"]
    for table, items in info.items():
        if isinstance(items, dict):
            lines += ["", f"[{table}]"] + [f"{k} = {value(v)}" for k, v in items.items()]
    return "\n".join(lines) + "\n"
