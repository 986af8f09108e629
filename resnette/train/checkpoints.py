"""Checkpoints: written atomically, loaded without ever unpickling arbitrary objects.

`checkpoint.pt` holds everything needed to continue a run exactly where it stopped: weights,
optimizer state, EMA weights, the schedule and the position in it (epoch, batch), the RNG
states, the recorder, the config and the class names. It contains only tensors, numbers,
strings, lists, tuples and dicts, so `torch.load(weights_only=True)` reads it, and a file that
would run code when unpickled is refused. `model.safetensors` holds the weights alone, for
sharing: that format cannot carry code at all.
"""
from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

from ..files import atomic_write, load_torch, open_temporary, write_bytes
from ..models.weights import check_finite_state, check_weights
from ..display import term
from ..utils import ResnetteError
from .schedules import Schedule

FORMAT = "resnette-checkpoint-1"


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write `state` to `path` atomically: a reader sees the old checkpoint or the new one."""
    state = {"format": FORMAT, **state}

    def write(tmp: str) -> None:
        with open_temporary(tmp) as f:
            _save_reporting_os_errors(state, f)

    return atomic_write(path, write)


class _RecordingFile:
    """A file that remembers the OSError of a failed write (disk full, file too large)."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def _save_reporting_os_errors(state: dict, f) -> None:
    """torch.save turns a failed write into RuntimeError('unexpected pos ...'); re-raise the
    OSError underneath, so atomic_write can say "disk full" instead of printing a traceback."""
    recording = _RecordingFile(f)
    try:
        torch.save(state, recording)
        f.flush()
    except RuntimeError:
        if recording.error is not None:
            raise recording.error from None
        raise


def save_weights(path: str | Path, model: nn.Module,
                 metadata: dict[str, str] | None = None) -> Path:
    """The model's weights as safetensors (contiguous copies; shared tensors stored once each).

    Serialised in memory and written by Python, because safetensors' own writer reports a
    full disk as a SafetensorError rather than the OSError atomic_write explains."""
    tensors = {k: v.detach().contiguous().cpu().clone() for k, v in model.state_dict().items()}
    data = safetensors_bytes(tensors, metadata=metadata)
    return write_bytes(path, data)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint with weights_only=True through the gate (resnette/files: any bytes,
    a FIFO, a failed CRC or pickled code are one line); a state of another kind is refused."""
    path = Path(path)
    if not path.is_file():
        raise ResnetteError(f"no checkpoint at {path}; train first or check --run-dir")
    state = load_torch(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ResnetteError(f"{path} is not a resnette checkpoint (format {FORMAT} expected)")
    if isinstance(state.get("model"), dict):   # values, before the run is touched (claim.py)
        check_weights(state["model"], None, str(path))
    check_finite_state(state.get("optimizer"), str(path), "optimizer state")
    return state


def check_compatible(model: nn.Module, weights: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights from another architecture, the same one with another class count, or
    values no trained model holds (NaN, 1e30, integers, complex: models/weights.py)."""
    own = model.state_dict()
    if set(own) != set(weights):
        missing = sorted(set(own) - set(weights))[:2]
        extra = sorted(set(weights) - set(own))[:2]
        raise ResnetteError(
            f"{source} is for another architecture (missing {missing}, unexpected {extra}); "
            "use the same --arch it was trained with")
    for k, v in own.items():
        if tuple(v.shape) != tuple(weights[k].shape):
            last = list(own)[-1]
            if k in (last, list(own)[-2]) and v.ndim <= 2:
                raise ResnetteError(
                    f"{source} has {weights[k].shape[0]} classes but this model has {v.shape[0]}; "
                    "use data with the same classes or start a new run")
            raise ResnetteError(
                f"{source} is for another architecture ({k}: {tuple(weights[k].shape)} there, "
                f"{tuple(v.shape)} here); use the same --arch it was trained with")
    check_weights(weights, own, source)


def rng_state() -> dict:
    """Every global RNG as tensors and numbers (weights_only-safe)."""
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- a Learner's checkpoint -------------------------------------------------------------------
def save_learner(learn, epoch: int, batch: int) -> Path:
    """Everything needed to continue `learn` at (`epoch`, `batch`) into its run's checkpoint,
    and the weights worth sharing (the EMA's when on) into the run's model file."""
    config = dict(dataclasses.asdict(learn.settings), precision=learn.precision,
                  channels_last=learn.channels_last, metrics=list(learn.metrics),
                  n_out=len(getattr(learn.dls, "vocab", [])) or None)
    state = {"model": learn.model.state_dict(), "optimizer": learn.opt.state_dict(),
             "callbacks": callback_states(learn),
             "scaler": learn.scaler.state_dict() if learn.scaler.is_enabled() else None,
             "schedule": learn.schedule.as_dict(), "position": {"epoch": epoch, "batch": batch},
             "rng": rng_state(), "recorder": learn.recorder.state(), "config": config,
             "vocab": list(getattr(learn.dls, "vocab", []))}
    path = save_checkpoint(learn.run.checkpoint, state)
    save_weights(learn.run.model, learn.kept_model, weights_metadata(learn))
    return path


def weights_metadata(learn) -> dict[str, str]:
    """What model.safetensors records besides the weights: the class names, and the
    architecture's registry name (e.g. xresnet18) when the Learner was told it."""
    meta = {"vocab": "\n".join(getattr(learn.dls, "vocab", []))   # a non-UTF-8 name as \\udcNN
            .encode("utf-8", "backslashreplace").decode("utf-8")}
    return {"arch": learn.settings.arch, **meta} if learn.settings.arch else meta


def load_into(learn, path: str | Path, with_opt: bool = True) -> dict:
    """Load a checkpoint's weights (and optimizer, EMA and scaler state) into `learn`."""
    state = load_checkpoint(path)
    check_compatible(learn.model, state["model"], str(path))
    averaged = (state.get("callbacks") or {}).get("average_weights") or state.get("ema")
    if with_opt and isinstance(averaged, dict):   # before anything is loaded into `learn`
        check_weights(averaged, learn.model.state_dict(), f"{path} (its averaged weights)")
    learn.model.load_state_dict(state["model"])
    if with_opt:
        learn.opt.load_state_dict(state["optimizer"])
        load_callback_states(learn, state)
        if learn.scaler.is_enabled() and state.get("scaler"):
            learn.scaler.load_state_dict(state["scaler"])
    return state


def callback_states(learn) -> dict[str, dict]:
    """Every callback's state, by name: one protocol (state_dict/load_state_dict) for all."""
    return {cb.name: st for cb in learn.cbs
            if hasattr(cb, "state_dict") and (st := cb.state_dict()) is not None}


def load_callback_states(learn, state: dict) -> None:
    """Give each callback its saved state (checkpoints before callbacks kept their own state
    stored the EMA's under "ema")."""
    saved = state.get("callbacks") or ({"average_weights": state["ema"]} if state.get("ema")
                                       else {})
    for cb in learn.cbs:
        if getattr(cb, "name", None) in saved:
            cb.load_state_dict(saved[cb.name])


def resume(learn, sched: Schedule) -> tuple[int, int]:
    """Put `learn` back where its run's checkpoint stopped; returns (epoch, batch) to go on from.
    Only the schedule that wrote the checkpoint may continue it (else the lr curve would jump)."""
    if learn.run is None:
        raise ResnetteError("resume=True needs a run_dir to read the checkpoint from")
    path = learn.run.checkpoint
    if not path.exists():
        if not learn.quiet:
            print(f"no checkpoint in {term(learn.run.path)}; starting from the beginning")
        return 0, 0
    saved = Schedule.from_dict(load_checkpoint(path)["schedule"])
    if saved != sched:
        raise ResnetteError(f"{path} was written by a different schedule ({saved.kind}, "
                            f"{saved.n_epoch} epochs, lr {saved.lr:g}); resume with the same "
                            "settings")
    state = load_into(learn, path)
    set_rng_state(state["rng"])
    learn.recorder.load_state(state["recorder"])
    return state["position"]["epoch"], state["position"]["batch"]
