"""A trained model rebuilt from its files: a run folder, or a safetensors file + its config.

What a model needs besides its weights is small: the architecture and image size (from the
TrainConfig), the class names and the input normalisation (from classes.json). We also embed
both in the safetensors metadata when we export, so an exported `.safetensors` file alone is
enough; a run folder's `model.safetensors` finds them beside it.
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors, safe_open
from torch import nn

from resnette.models import create_model, interop, list_models
from resnette.models.weights import BadWeights
from resnette.run.claim import open_existing, recover
from resnette.run.config import TrainConfig, make_config, read_toml, to_toml, unescape_bytes
from resnette.run.folder import Run
from resnette.run.reading import (CLASSES_ADVICE, CONFIG_ADVICE, check_classes, damaged,
                                  read_classes, read_config)
from resnette.train.checkpoints import check_compatible
from resnette.files import check_regular_file, read_bytes
from resnette.utils import ResnetteError

META_CONFIG, META_CLASSES = "resnette_config", "resnette_classes"


@dataclass
class Trained:
    model: nn.Module          # in eval mode, on the CPU
    config: TrainConfig
    vocab: list[str]          # folder names, the order of the model's outputs
    names: list[str]          # human names, same order
    mean: list[float]         # per channel, the normalisation the model was trained with
    std: list[float]
    channels: int
    source: str               # the weights file, for messages

    @property
    def classes_info(self) -> dict:
        return {"vocab": self.vocab, "names": self.names, "mean": self.mean, "std": self.std,
                "channels": self.channels}


def weights_file(path: Path) -> Path:
    """A run folder's best weights (the final ones when there is no best)."""
    run = Run(path)
    for f in (run.best, run.model):
        if f.is_file():
            return f
    raise ResnetteError(f"no weights in {path} (model.safetensors); train the run first")


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        check_regular_file(path, "weights file")   # a FIFO would block safetensors' open
        if not _utf8(path):   # safetensors takes only UTF-8 paths: read the bytes ourselves
            return _read_weights_bytes(read_bytes(path, "weights file"))
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except FileNotFoundError:
        raise ResnetteError(f"weights file {path} does not exist") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise ResnetteError(f"cannot read {path} as safetensors ({e}); "
                            "pass a run folder or a .safetensors file") from None


def _utf8(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _read_weights_bytes(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A safetensors file from its bytes: the format's header (8-byte length, then JSON)
    holds the metadata; `safetensors.torch.load` the tensors."""
    n = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8:8 + n]).get("__metadata__") or {}
    return load_safetensors(data), dict(meta)


def check_arch(arch: str) -> None:
    """Fail on a misspelt --arch before any data is downloaded or decoded."""
    if arch not in list_models():
        raise ResnetteError(f"unknown architecture {arch!r}; choose one of: "
                            + ", ".join(list_models()))


def model_for(cfg: TrainConfig, n_out: int, c_in: int = 3) -> nn.Module:
    """The net a config describes, to train or to load weights into: the architecture with
    its options (--act, --sa, --blur). Only options that differ from the default are passed,
    so a net without self-attention or blur-pool options is never handed them (and says so
    in one line if the user asks for them)."""
    opts: dict = {"act": cfg.act} if cfg.act != "relu" else {}
    opts.update({k: True for k in ("sa", "blur") if getattr(cfg, k)})
    return create_model(cfg.arch, n_out=n_out, c_in=c_in, **opts)


def load_trained(path: str | Path, config: str | Path | None = None) -> Trained:
    """Rebuild the model of a run folder, or of a `.safetensors` file (its config taken from
    `config`, else its metadata, else the config.toml/classes.json beside it)."""
    path = Path(path)
    if path.is_dir() or not (path.exists() or path.suffix == ".safetensors"):
        if config is not None:   # a run's own config.toml is its truth: never mixed with another
            raise ResnetteError(f"--config is for a bare .safetensors file; {path} is a run "
                                "folder with its own config.toml: leave --config out")
        open_existing(path)   # an interrupted --overwrite is undone first
        weights_path, folder = weights_file(path), path
    else:
        recover(Run(path.parent), strict=True)
        weights_path, folder = path, path.parent
    tensors, meta = read_weights(weights_path)
    if config is not None:
        cfg = make_config(read_toml(config))
    elif META_CONFIG in meta:
        cfg = _embedded_config(meta[META_CONFIG], weights_path)
    elif Run(folder).config.is_file():
        cfg = read_config(Run(folder).config)
    else:
        raise ResnetteError(f"{weights_path} has no config: pass --config config.toml or "
                            "keep the run folder's config.toml beside it")
    folders = [folder] + ([Path(config).parent] if config else [])
    classes = _classes(meta, folders, weights_path)
    foreign = interop.detect(tensors)   # `resnette export --format timm|fastai` wrote it
    try:
        model = model_for(cfg, len(classes["vocab"]), classes["channels"])
        if foreign is None:
            check_compatible(model, tensors, str(weights_path))
    except BadWeights:   # the weights file's own fault: it names the file
        raise
    except ResnetteError as e:   # the run's own files disagree: say which one
        if "classes" in str(e) and META_CLASSES not in meta:
            raise damaged(classes["source"], f"{len(classes['vocab'])} class names for "
                          f"weights of another number of classes: {e}", CLASSES_ADVICE) from None
        if config is None and META_CONFIG not in meta:
            raise damaged(Run(folder).config, f"the weights {weights_path.name} do not fit "
                          f"the model it describes: {e}", CONFIG_ADVICE) from None
        raise
    if foreign is not None:
        tensors = _our_names(model, tensors, foreign, weights_path, cfg, len(classes["vocab"]))
    model.load_state_dict(tensors)
    model.eval()
    return Trained(model, cfg, classes["vocab"], classes["names"], classes["mean"],
                   classes["std"], classes["channels"], str(weights_path))


def _our_names(model: nn.Module, tensors: dict[str, torch.Tensor], foreign: str, path: Path,
               cfg: TrainConfig, n_classes: int) -> dict[str, torch.Tensor]:
    """Weights `resnette export --format timm|fastai` wrote (their libraries' names) renamed to
    `model`'s and checked (interop.from_format), so such a file predicts beside its run like
    the run's own weights; one line when the config beside it describes another model."""
    try:
        return interop.from_format(model, tensors, foreign, str(path))
    except ResnetteError:
        raise ResnetteError(f"{path} holds {foreign}'s names for another model than the "
                            f"{cfg.arch} for {n_classes} classes its config and classes "
                            "describe; predict it with the run it was exported from, or pass "
                            "that run's --config") from None


def _embedded_config(text: str, weights_path: Path) -> TrainConfig:
    """The config an export embeds in its metadata, checked like a run's config.toml."""
    try:
        values = tomllib.loads(text)
        return make_config({k: unescape_bytes(v) if isinstance(v, str) else v
                            for k, v in values.items()})
    except (tomllib.TOMLDecodeError, ResnetteError) as e:
        raise damaged(weights_path, f"its embedded config: {e}", "export the run again, or pass "
                      "--config with the run's config.toml") from None


def _classes(meta: dict[str, str], folders: list[Path], weights_path: Path) -> dict:
    found = [Run(f).classes for f in folders if Run(f).classes.is_file()]
    if META_CLASSES in meta:
        advice = "export the run again"
        try:
            data = json.loads(meta[META_CLASSES])
        except ValueError as e:
            raise damaged(weights_path, f"its embedded class names: {e}", advice) from None
        return {**check_classes(data, weights_path, advice), "source": weights_path}
    if found:
        return {**read_classes(found[0]), "source": found[0]}
    raise ResnetteError(f"{weights_path} has no class names: keep the run's classes.json "
                        "beside it, or export it with `resnette export`")


def metadata(trained: Trained) -> dict[str, str]:
    """What export embeds in the safetensors file so that it stands alone."""
    return {META_CONFIG: to_toml(trained.config), META_CLASSES: json.dumps(trained.classes_info),
            "format": "pt"}


def init_from(model: nn.Module, source: str | Path, arch: str) -> str:
    """Load another run's weights into `model` for fine-tuning (`--init-from`).

    Same classes: every weight is loaded. Different classes: everything but the final linear
    layer (the head starts fresh, as in transfer learning). Another architecture: refused.
    `source` may also be a timm or fastai state dict of the counterpart model (models/
    interop.py: .safetensors, or .pth read with weights_only=True).
    Returns a one-line description of what was done.
    """
    own = model.state_dict()
    head = _head_keys(model)
    foreign = interop.read_foreign(source, model, arch)   # timm's or fastai's names, else None
    if foreign is not None:
        theirs, origin, n_classes = foreign, str(source), foreign[head[0]].shape[0]
    else:
        src = load_trained(source)
        if src.config.arch != arch:
            raise ResnetteError(f"--init-from {source} is a {src.config.arch} but this run "
                                f"trains {arch}; use --arch {src.config.arch}")
        theirs, origin, n_classes = src.model.state_dict(), src.source, len(src.vocab)
    if set(own) != set(theirs) or any(own[k].shape != theirs[k].shape for k in own
                                      if k not in head):
        raise ResnetteError(f"--init-from {source}: its weights do not fit this {arch} "
                            "(another input channel count?)")
    same_head = all(own[k].shape == theirs[k].shape for k in head)
    keep = {k: v for k, v in theirs.items() if same_head or k not in head}
    model.load_state_dict(keep, strict=False)
    if same_head:
        return f"initialised every weight from {origin}"
    return (f"initialised from {origin} with a fresh head "
            f"({n_classes} -> {own[head[0]].shape[0]} classes)")


def _head_keys(model: nn.Module) -> list[str]:
    """State-dict keys of the last linear layer: the part that depends on the classes."""
    last = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    prefix = f"{last}." if last else ""
    return [k for k in (prefix + "weight", prefix + "bias") if k in model.state_dict()]
