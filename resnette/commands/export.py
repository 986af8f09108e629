"""`resnette export`: a trained model as ONNX, or as plain safetensors + config.

ONNX is for serving without PyTorch (onnxruntime, browsers, phones); the batch dimension is
dynamic so any batch size works, and the input is the normalised image at the training size.
The safetensors export is for PyTorch users: `model.safetensors` (class names, normalisation
and config embedded as metadata) and `config.toml` beside it; `load_exported` rebuilds the
model from those two files alone.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import warnings
from pathlib import Path

import torch

from resnette.run.config import save_config
from resnette.run.folder import Run
from resnette.run.lock import lock_run
from resnette.run.trained import Trained, load_trained, metadata
from resnette.train.checkpoints import save_weights
from resnette.utils import ResnetteError, atomic_write

FORMATS = ("onnx", "safetensors")


def export_onnx(trained: Trained, out: str | Path, size: int | None = None) -> Path:
    """Write `out` (.onnx) with the input `input` (N,C,size,size) and output `logits`."""
    out = Path(out)
    size = size or trained.config.size
    x = torch.zeros(2, trained.channels, size, size)
    model = trained.model.eval()
    with _quiet_exporter():
        try:
            program = torch.onnx.export(
                model, (x,), input_names=["input"], output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
                dynamo=True, verbose=False)
        except ImportError as e:
            raise ResnetteError(f"ONNX export needs the onnx extras ({e}); "
                                "pip install 'resnette[onnx]'") from None
    atomic_write(out, lambda tmp: program.save(tmp))
    names = json.dumps(trained.names)
    _add_onnx_metadata(out, {"resnette_classes": names,
                             "mean": json.dumps(trained.mean), "std": json.dumps(trained.std)})
    return out


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's warnings (e.g. 'torchvision is not installed') are not for our users;
    the logger's level is restored afterwards."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _add_onnx_metadata(path: Path, props: dict[str, str]) -> None:
    """Class names in the ONNX file itself, so a server needs no other file."""
    import onnx
    m = onnx.load(str(path))
    for key, value in props.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = key, value
    atomic_write(path, lambda tmp: onnx.save(m, tmp))


def export_safetensors(trained: Trained, out_dir: str | Path) -> Path:
    """Write out_dir/model.safetensors (self-describing) and out_dir/config.toml."""
    exported = Run(Path(out_dir))   # the same two names a run folder uses
    if exported.metrics.is_file() or exported.checkpoint.is_file():
        raise ResnetteError(f"{exported.path} is a training run's folder: exporting there would "
                            "replace its weights and config; choose another --out")
    save_weights(exported.model, trained.model, metadata(trained))
    save_config(trained.config, exported.config)
    return exported.model


def load_exported(weights: str | Path, config: str | Path | None = None) -> Trained:
    """Rebuild a model from an exported safetensors file (and its config.toml)."""
    return load_trained(weights, config=config)


def export(source: str | Path, fmt: str, out: str | Path | None = None) -> Path:
    """What `resnette export` does: load a run (or weights) and write the chosen format."""
    if fmt not in FORMATS:
        raise ResnetteError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    trained = load_trained(source)
    src = Path(source)
    beside = Run(src if src.is_dir() else src.parent)
    target = Path(out) if out else (beside.onnx if fmt == "onnx" else beside.export)
    write = export_onnx if fmt == "onnx" else export_safetensors
    if out is not None:
        return write(trained, target)
    # into the run folder: locked (shared) like evaluate and report, never beside a training
    with lock_run(beside.path, "resnette export", "pass --out to export to a writable place",
                  shared=True):
        return write(trained, target)


def main(args: argparse.Namespace) -> None:
    print(f"exported {export(args.run, args.format, args.out)}")
