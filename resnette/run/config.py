"""A training run's settings: one dataclass, read from TOML, overridden by flags, validated.

Layers, lowest first: the dataclass defaults (a bare `resnette train` is the chapter's
xresnet18 on Imagenette-160 at 128 px for 5 epochs), then a preset for the chosen dataset
(`digits` wants small images and more epochs), then a named recipe (`--recipe`, see
run/recipes.py), then the `--config` file, then the flags. The complete result is written
into the run folder as `config.toml`: `resnette train --config runs/<name>/config.toml`.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from resnette.run import recipes
from resnette.run.tomlfile import (escape_bytes, read_toml, toml_value,  # noqa: F401 (re-exported)
                                   unescape_bytes)
from resnette.train.settings import LIMITS, check_limits
from resnette.files import write_text
from resnette.utils import ResnetteError


def _opt(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field that carries its own --help text (the flags are built from these)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class TrainConfig:
    # -- what to train on, and where to keep it
    data: str = _opt("imagenette-160", "named dataset (imagenette-160, imagewoof-160, digits, ...) "
                     "or a folder of images <root>/<split>/<label>/*.jpg")
    data_dir: str | None = _opt(None, "cache folder for downloaded datasets")
    name: str | None = _opt(None, "run name: the run folder is runs/<name> (default: "
                            "<data>-<arch>-<size>, numbered when taken)")
    run_dir: str | None = _opt(None, "run folder (default: runs/<name>)")
    init_from: str | None = _opt(None, "start from another run's weights (a run folder or a "
                                 ".safetensors file); the head is fresh when classes differ")
    recipe: str | None = _opt(None, "a named recipe (`resnette recipes`): chapter, fast or "
                              "leaderboard; its settings sit under the config file and the flags")
    # -- the model
    arch: str = _opt("xresnet18", "architecture (see `resnette summary --list`)")
    act: str = _opt("relu", "activation of the XResNets and chapter nets: relu, mish or silu")
    sa: bool = _opt(False, "XResNets: simple self-attention in the first stage's last block")
    blur: bool = _opt(False, "XResNets: blur-pool (anti-aliased) downsampling, MaxBlurPool in the stem")
    # -- images: the chapter's Resize(presize) then a random crop to `size`
    size: int = _opt(128, "training image size in pixels (crop size)")
    presize: int = _opt(160, "size images are decoded and cached at, before augmentation")
    augment: bool = _opt(True, "augment the training images (see --aug)")
    aug: str = _opt("chapter", "which augmentation: chapter (aug_transforms: random resized crop, "
                    "flip, rotation, zoom, warp, lighting) or crop_flip (the crop and flip only)")
    min_scale: float = _opt(0.5, "smallest fraction of the image a random crop keeps")
    valid_pct: float | None = _opt(None, "random validation split when the folder has none")
    test_size: int | None = _opt(None, "size the validation images are resized to (default: "
                                 "--size); larger than the last training size can score higher")
    # -- the schedule: the chapter trains every net with fit_one_cycle(5, 3e-3)
    epochs: int = _opt(5, "number of epochs")
    valid_every: int = _opt(1, "validate every N epochs and always after the last (0: the "
                            "last epoch only, which saves minutes on a CPU)")
    lr: float = _opt(3e-3, "peak learning rate")
    bs: int = _opt(128, "batch size (per process under torchrun: a step sees bs x processes)")
    schedule: str = _opt("one_cycle", "learning rate schedule: one_cycle, flat_cos or constant")
    pct_start: float | None = _opt(None, "fraction of training before the anneal (default: "
                                   "0.25 for one_cycle, 0.75 for flat_cos)")
    opt: str = _opt("adamw", "optimizer: adamw, sgd or ranger")
    wd: float = _opt(0.01, "weight decay (never on batchnorm or bias)")
    # -- the extras from the chapter and the Imagenette leaderboard
    label_smoothing: float = _opt(0.0, "label smoothing epsilon (0 = plain cross-entropy)")
    mixup: float = _opt(0.0, "mixup alpha (0 = off)")
    cutmix: float = _opt(0.0, "cutmix alpha (0 = off)")
    progressive: list[int] = _opt([], "progressive resizing: sizes spread evenly over the "
                                  "epochs, e.g. 64 96 128 (empty = always --size)")
    clip: float | None = _opt(None, "clip the gradient norm to this value")
    ema: float | None = _opt(None, "keep an exponential moving average of the weights "
                             "with this decay, e.g. 0.999")
    lr_find: bool = _opt(False, "run the learning rate finder first and save its plot")
    tensorboard: bool = _opt(False, "log the metrics, lr and smoothed loss to <run>/tensorboard/ "
                             "(needs: pip install resnette[tensorboard])")
    mlflow: str | None = _opt(None, "log params, metrics per epoch and the run's files to MLflow "
                              "at this tracking URI (bare --mlflow: $MLFLOW_TRACKING_URI, else "
                              "MLflow's default; needs: pip install resnette[mlflow])",
                              nargs="?", const="default")
    # -- the machine
    precision: str = _opt("auto", "auto, fp32, bf16 or fp16 (auto: bf16 where the hardware has "
                          "it, else fp16 on a GPU, fp32 on a CPU; fp16 needs a GPU)")
    device: str = _opt("auto", "auto, cpu, cuda or cuda:N")
    channels_last: bool | None = _opt(None, "channels-last memory format (default: where it pays: "
                                      "on a GPU, and on CPUs with AVX512-BF16 or AMX)")
    compile: bool = _opt(False, "torch.compile the model")
    seed: int = _opt(0, "random seed: the same seed on the same machine repeats a run")
    # -- many GPUs (torchrun; docs/DISTRIBUTED.md)
    sync_bn: bool = _opt(False, "under torchrun, batchnorm statistics over the global batch "
                         "(SyncBatchNorm; GPUs only; helps when bs per GPU is small)")
    scale_lr: bool = _opt(False, "under torchrun, multiply lr by the number of processes "
                          "(the linear scaling rule for the larger global batch)")


# Sensible settings per dataset, applied under the config file and the flags. The digits
# are 8x8 scans upscaled to 32 px: a flip or a crop changes what digit it is, and there are
# only ~1,400 training images (22 batches an epoch). Tuned on a split of the training set
# (benchmarks/tune_digits.py, docs/RECIPES.md): the ResBlock net's batchnorm statistics lag
# its fast-moving weights there (valid_loss 2.3 -> 9.7 in the first epochs, 97.2% after 8);
# the chapter's plain simple_cnn at lr 3e-3 for 12 epochs falls smoothly, to 98.6%.
PRESETS: dict[str, dict[str, Any]] = {
    "digits": dict(arch="simple_cnn", size=32, presize=32, bs=64, epochs=12, lr=3e-3,
                   augment=False),
}

SCHEDULES = ("one_cycle", "flat_cos", "constant")
AUGS = ("chapter", "crop_flip")
ACTS = ("relu", "mish", "silu")

# The Learner's limits (train/settings.py) plus those of the keys only a run has.
_RANGES: dict[str, tuple[Any, str]] = {
    **LIMITS,
    "schedule": (lambda v: v in SCHEDULES, "one of " + ", ".join(SCHEDULES)),
    "data": (lambda v: v != "", "a dataset name or a folder"),
    "aug": (lambda v: v in AUGS, "one of " + ", ".join(AUGS)),
    "act": (lambda v: v in ACTS, "one of " + ", ".join(ACTS)),
    "test_size": (lambda v: v is None or 32 <= v <= 4096, "at least 32 and at most 4096"),
    "pct_start": (lambda v: v is None or 0 <= v < 1, "in [0, 1)"),
    "recipe": (lambda v: v is None or v in recipes.names(), "one of " + ", ".join(recipes.names())),
}


def eval_size(cfg: TrainConfig) -> int:
    """The size a trained model is validated, evaluated and used for prediction at: --test-size
    when set (the train/test resolution discrepancy, docs/RECIPES.md), else the training size."""
    return cfg.test_size or cfg.size


def field_names() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def base_type(tp: Any) -> type:
    """The concrete type behind `int`, `float | None`, `list[int]` (for flags and checks);
    `tp` is a resolved hint from `type_hints()`."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return typing.get_origin(tp) or tp


def type_hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _check_type(key: str, value: Any, tp: Any) -> Any:
    """Accept a TOML/flag value for `key` if it has the field's type; ints pass as floats."""
    optional = type(None) in typing.get_args(tp)
    want = base_type(tp)
    if value is None and optional:
        return None
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is list:
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                           for v in value):
            return list(value)
        raise ResnetteError(f"config key '{key}' must be a list of integers, got {value!r}")
    if isinstance(value, want) and not (want is int and isinstance(value, bool)):
        return value
    raise ResnetteError(f"config key '{key}' must be {want.__name__}"
                        f"{' or unset' if optional else ''}, got {type(value).__name__} {value!r}")


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check every key's type and range; the error names the key and the allowed values."""
    hints = type_hints()
    for f in fields(cfg):
        setattr(cfg, f.name, _check_type(f.name, getattr(cfg, f.name), hints[f.name]))
    values = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    # progressive first: a `size` it implied (its last entry) is wrong only because the list is
    check_limits({"progressive": values.pop("progressive"), **values}, "config key", _RANGES)
    if cfg.bs == 1:   # training only (evaluate may use 1): batchnorm learns from batch statistics
        raise ResnetteError("config key 'bs' is 1: batchnorm needs at least two images a batch "
                            "to train; use --bs 2 or more")
    _check_progressive(cfg)
    if cfg.presize < cfg.size:
        raise ResnetteError(f"presize ({cfg.presize}) must be at least size ({cfg.size}): "
                            "images are cropped from the presized version")
    return cfg


def _check_progressive(cfg: TrainConfig) -> None:
    """The sizes of progressive resizing against the keys they share meaning with: each is a
    crop of the presized image (<= presize, as `size`), each gets an epoch, the last is `size`."""
    sizes = cfg.progressive
    if not sizes:
        return
    shown = " ".join(map(str, sizes))
    if max(sizes) > cfg.presize:
        raise ResnetteError(f"progressive sizes ({shown}) must be at most presize "
                            f"({cfg.presize}): images are cropped from the presized version; "
                            f"raise --presize or give smaller sizes")
    if len(sizes) > cfg.epochs:
        raise ResnetteError(f"progressive has {len(sizes)} sizes ({shown}) for {cfg.epochs} "
                            "epoch(s): each size needs an epoch; give at most "
                            f"{cfg.epochs} sizes, more --epochs, or --progressive with none")
    if sizes[-1] != cfg.size:
        raise ResnetteError(f"the last progressive size ({sizes[-1]}) is the size the run ends "
                            f"at, but size is {cfg.size}; give one of them only (--size alone "
                            "clears progressive, --progressive alone sets size)")


# A key set in a layer also decides these keys, unless the same layer sets them too: a lower
# layer's value was chosen for its own `size`/`schedule`, not for the one asked for now.
IMPLIES: dict[str, tuple[str, ...]] = {
    "size": ("progressive", "test_size"),   # `--size 32` trains at 32 and validates at 32
    "schedule": ("pct_start",),             # flat_cos's 0.75 is not one_cycle's 0.25
}


def layered(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """The layers merged, lowest first, with IMPLIES applied; a `progressive` list given
    without a `size` in its layer sets `size` to its last entry (the size the run ends at)."""
    values: dict[str, Any] = {}
    for layer in layers:
        for key, implied in IMPLIES.items():
            if key in layer:
                for k in implied:
                    if k not in layer:
                        values.pop(k, None)
        values.update(layer)
        ends = layer.get("progressive")
        if "size" not in layer and isinstance(ends, list) and ends and isinstance(ends[-1], int):
            values["size"] = ends[-1]
    return values


def make_config(file_values: dict[str, Any] | None = None,
                flag_values: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults < dataset preset < recipe < config file < flags (`layered`), then validate."""
    overrides = {**(file_values or {}), **(flag_values or {})}
    _reject_unknown(overrides)
    data = overrides.get("data", TrainConfig.data)
    preset = PRESETS.get(data, {}) if isinstance(data, str) else {}
    recipe = overrides.get("recipe")
    layer = recipes.settings(recipe) if isinstance(recipe, str) else {}
    values = layered([preset, layer, file_values or {}, flag_values or {}])
    hints = type_hints()
    checked = {k: _check_type(k, v, hints[k]) for k, v in values.items()}
    return validate(TrainConfig(**checked))


def _reject_unknown(values: dict[str, Any]) -> None:
    names = field_names()
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ResnetteError(f"unknown config key '{key}'{hint}; valid keys: "
                                + ", ".join(names))


def load_config(path: str | Path, **flag_values: Any) -> TrainConfig:
    return make_config(read_toml(path), flag_values)


def to_toml(cfg: TrainConfig) -> str:
    """The complete config as TOML. Unset (None) keys are written as comments: TOML has no
    null, and leaving them out would hide that they exist."""
    lines = ["# resnette training config: rerun with `resnette train --config <this file>`"]
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if value is None:
            lines.append(f"# {f.name} = (unset)")
        else:
            lines.append(f"{f.name} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def save_config(cfg: TrainConfig, path: str | Path) -> Path:
    """config.toml, with every path it records absolute (`recorded`)."""
    return write_text(path, to_toml(recorded(cfg)))


def recorded(cfg: TrainConfig) -> TrainConfig:
    """The config as a file records it: --data, --data-dir and --init-from paths made absolute,
    so the run resumes or repeats from any folder (a named dataset, "digits", stays a name)."""
    import os

    from resnette.data.datasets import known_names
    def absolute(value: str | None, named: bool = False) -> str | None:
        if not value or (named and value in known_names()):
            return value
        path = os.path.expanduser(value)
        return os.path.abspath(path) if os.path.exists(path) else value
    return dataclasses.replace(cfg, data=absolute(cfg.data, named=True),
                               data_dir=absolute(cfg.data_dir), init_from=absolute(cfg.init_from))


def as_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
