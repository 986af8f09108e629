"""`resnette export`: a trained model as ONNX, or as plain safetensors + config.

ONNX is for serving without PyTorch (onnxruntime, browsers, phones): the input is the
normalised image, traced at the size the run is scored at (its --test-size, else its last
training size: the size evaluate, predict and the report use), with the batch, height and
width dynamic, so the model also takes other sizes (the nets pool adaptively); the size to
feed is in the file's metadata (`resnette_size`).
The safetensors export is for PyTorch users: `model.safetensors` (class names, normalisation
and config embedded as metadata) and `config.toml` beside it; `load_exported` rebuilds the
model from those two files alone. `timm` and `fastai` write the weights alone in those
libraries' names (models/interop.py) for the counterpart model: timm's `resnet*d`, fastai's
`xresnet*`; a model without an exact counterpart is refused in one line.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import warnings
from pathlib import Path

import torch

from resnette.display import term
from resnette.models.interop import FORMATS as FOREIGN, counterpart, to_format
from resnette.run.config import eval_size, save_config
from resnette.run.outputs import guard_output
from resnette.run.folder import Run
from resnette.run.lock import lock_run
from resnette.run.trained import Trained, load_trained, metadata
from resnette.train.checkpoints import save_weights
from resnette.files import atomic_write, write_bytes
from resnette.utils import ResnetteError

FORMATS = ("onnx", "safetensors", *FOREIGN)


def export_onnx(trained: Trained, out: str | Path, size: int | None = None) -> Path:
    """Write `out` (.onnx) with the input `input` (N,C,H,W) and output `logits`, traced at
    `size` (default: the run's scoring size, `eval_size`)."""
    out = Path(out)
    size = size or eval_size(trained.config)
    x = torch.zeros(2, trained.channels, size, size)
    model = trained.model.eval()
    with _quiet_exporter():
        program = _export_program(model, x)
    atomic_write(out, lambda tmp: program.save(tmp))
    _add_onnx_metadata(out, {"resnette_classes": json.dumps(trained.names),
                             "resnette_size": str(size),
                             "mean": json.dumps(trained.mean), "std": json.dumps(trained.std)})
    return out


def _export_program(model: torch.nn.Module, x: torch.Tensor):
    """The ONNX program with a dynamic batch, height and width; a net whose graph depends on
    the image size (the exporter refuses the dynamic axes) is exported at x's size alone."""
    dim = torch.export.Dim
    batch = {0: dim("batch", min=1, max=4096)}
    sides = {2: dim("height", min=32, max=4096), 3: dim("width", min=32, max=4096)}
    try:
        try:
            return torch.onnx.export(model, (x,), input_names=["input"], output_names=["logits"],
                                     dynamic_shapes=({**batch, **sides},), dynamo=True,
                                     verbose=False)
        except ImportError:
            raise
        except Exception:   # the exporter's errors have no common class: fixed sides then
            return torch.onnx.export(model, (x,), input_names=["input"], output_names=["logits"],
                                     dynamic_shapes=(batch,), dynamo=True, verbose=False)
    except ImportError as e:
        raise ResnetteError(f"ONNX export needs the onnx extras ({e}); "
                            "pip install 'resnette[onnx]'") from None


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


def foreign_name(trained: Trained, fmt: str) -> str:
    """The counterpart's name in `fmt` (timm/fastai), or the one-line refusal."""
    cfg = trained.config
    return counterpart(fmt, cfg.arch, cfg.act, cfg.sa, cfg.blur)


def export_foreign(trained: Trained, fmt: str, out: str | Path) -> Path:
    """The weights in `fmt`'s names: safetensors (class names and normalisation in its
    metadata), or a torch.save'd state dict when `out` ends in .pth/.pt."""
    out = Path(out)
    tensors = {k: v.detach().contiguous().clone()
               for k, v in to_format(trained.model.state_dict(), fmt).items()}
    if out.suffix in (".pth", ".pt"):
        return atomic_write(out, lambda tmp: torch.save(tensors, tmp))
    from safetensors.torch import save as safetensors_bytes
    meta = {"format": "pt", "source": f"resnette {trained.config.arch}",
            "classes": json.dumps(trained.names), "mean": json.dumps(trained.mean),
            "std": json.dumps(trained.std)}
    data = safetensors_bytes(tensors, metadata=meta)
    return write_bytes(out, data)


def how_to_load(trained: Trained, fmt: str, path: Path) -> str:
    """The Python lines that load an exported file in timm or fastai (the path as a Python
    literal: quotes and control characters escaped, so the line is safe to print and paste)."""
    name, n = foreign_name(trained, fmt), len(trained.names)
    read = (f'torch.load({str(path)!r}, weights_only=True)' if path.suffix in (".pth", ".pt")
            else f'safetensors.torch.load_file({str(path)!r})')
    build = (f'timm.create_model("{name}", num_classes={n}, in_chans={trained.channels})'
             if fmt == "timm" else f"fastai.vision.models.xresnet.{name}(n_out={n}, "
             f"c_in={trained.channels})")
    return f"model = {build}\nmodel.load_state_dict({read})"


def load_exported(weights: str | Path, config: str | Path | None = None) -> Trained:
    """Rebuild a model from an exported safetensors file (and its config.toml)."""
    return load_trained(weights, config=config)


def export(source: str | Path, fmt: str, out: str | Path | None = None) -> Path:
    """What `resnette export` does: load a run (or weights) and write the chosen format."""
    return _export(source, fmt, out)[0]


def _export(source: str | Path, fmt: str, out: str | Path | None) -> tuple[Path, Trained]:
    if fmt not in FORMATS:
        raise ResnetteError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    trained = load_trained(source)
    src = Path(source)
    beside = Run(src if src.is_dir() else src.parent)
    if fmt in FOREIGN:   # the name is checked (or refused) before anything is written
        default = beside.path / f"{fmt}-{foreign_name(trained, fmt)}.safetensors"
    else:
        default = beside.onnx if fmt == "onnx" else beside.export
    target = default
    if out is not None:   # never over a run's own files (run/outputs.py)
        target = guard_output(out, (default.name, "model.onnx", "export", "*-*.safetensors"),
                              "export", folder=fmt == "safetensors")

    def write() -> Path:
        if fmt in FOREIGN:
            return export_foreign(trained, fmt, target)
        return (export_onnx if fmt == "onnx" else export_safetensors)(trained, target)
    if out is not None:
        return write(), trained
    # into the run folder: locked (shared) like evaluate and report, never beside a training
    with lock_run(beside.path, "resnette export", "pass --out to export to a writable place",
                  shared=True):
        return write(), trained


def main(args: argparse.Namespace) -> None:
    path, trained = _export(args.run, args.format, args.out)
    print(f"exported {term(path, raw_bytes=True)}")
    if args.format in FOREIGN:
        print(f"load it in {args.format}:\n" + how_to_load(trained, args.format, path))
