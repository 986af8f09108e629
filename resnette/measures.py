"""One name per measured number, the same in every place a person or a script meets it: the
epoch table, metrics.csv, evaluation.json (and evaluations/*.json), `resnette runs` and the
report. The names are fastai's where a fastai reader sees them (the epoch table and
metrics.csv: `train_loss`, `valid_loss`, `accuracy`, `top_k_accuracy`), and the files,
`runs` and the report use the same ones, so a column found in one place is found by that name
in every other. `WORDS` says what each one is, for the report and the docs.

Older run folders wrote `top5` and `loss` in evaluation.json; `current` reads them under
today's names, so a run from before still shows everywhere.
"""
from __future__ import annotations

from typing import Any, Mapping

TRAIN_LOSS = "train_loss"          # the training objective on the training batches
VALID_LOSS = "valid_loss"          # the same objective on the validation set
ACCURACY = "accuracy"
TOP_K = "top_k_accuracy"           # fastai's name: the label among the 5 most likely classes
ERROR_RATE = "error_rate"          # fastai's: 1 - accuracy
CROSS_ENTROPY = "cross_entropy"    # an evaluation's loss: plain cross-entropy, never smoothed
TOP_K_K = 5

# what each name is, in words (the report's legends and tables; `objective` words the losses)
WORDS = {
    ACCURACY: "fraction of the images whose most likely class is their label",
    TOP_K: f"top-{TOP_K_K} accuracy: fraction of the images whose label is among the "
           f"{TOP_K_K} most likely classes",
    CROSS_ENTROPY: "plain cross-entropy (no label smoothing) of the label's probability",
    ERROR_RATE: "fraction of the images whose most likely class is not their label",
}

# an evaluation's numbers, in the order they are shown
EVALUATION = (ACCURACY, TOP_K, CROSS_ENTROPY)

# names older versions wrote (evaluation.json, `runs --json`), and what they are called now
OLD_NAMES = {"top5": TOP_K, "loss": CROSS_ENTROPY}


def current(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` (an evaluation read from a file) with old names read as today's; a key under
    today's name wins over an old one."""
    out = {OLD_NAMES.get(k, k): v for k, v in values.items() if k not in OLD_NAMES}
    for old, new in OLD_NAMES.items():
        if old in values and new not in out:
            out[new] = values[old]
    return out


def objective(config: Mapping[str, Any] | None = None) -> str:
    """The loss a run trains on, in words, from its config: 'label-smoothed cross-entropy,
    eps=0.1' when it smoothed its labels, else 'cross-entropy'."""
    eps = _number((config or {}).get("label_smoothing"))
    return f"label-smoothed cross-entropy, eps={eps:g}" if eps > 0 else "cross-entropy"


def words(key: str, config: Mapping[str, Any] | None = None) -> str:
    """What the number called `key` is, in words, for a run with `config` (its settings:
    label_smoothing, mixup, cutmix)."""
    config = config or {}
    if key == TRAIN_LOSS:
        mixed = [f"{k} alpha={_number(config.get(k)):g}" for k in ("mixup", "cutmix")
                 if _number(config.get(k)) > 0]
        on = f" on mixed images ({', '.join(mixed)})" if mixed else ""
        return (f"training objective ({objective(config)}){on}, smoothed over the batches "
                f"as fastai's train_loss")
    if key == VALID_LOSS:
        return f"validation objective ({objective(config)})"
    return WORDS.get(key, "a metric given to the Learner (its function's name)")


def legend(key: str, config: Mapping[str, Any] | None = None) -> str:
    """A column's name with what it is, short enough for a plot's legend."""
    short = {TRAIN_LOSS: f"training objective ({objective(config)})",
             VALID_LOSS: f"validation objective ({objective(config)})",
             TOP_K: f"top-{TOP_K_K} accuracy", CROSS_ENTROPY: "plain cross-entropy"}
    return f"{key}: {short[key]}" if key in short else key


def sizes_text(sizes: list[int], test_size: int) -> str:
    """Progressive resizing in words, epochs numbered from 0 as everywhere: 'train 64 px
    (epochs 0-1), 96 px (epochs 2-3), 128 px (epoch 4); test 128 px'."""
    spans: list[list[int]] = []   # [first epoch, last epoch, size]
    for epoch, size in enumerate(sizes):
        if spans and spans[-1][2] == size:
            spans[-1][1] = epoch
        else:
            spans.append([epoch, epoch, size])
    parts = [f"{s} px ({'epoch' if a == b else 'epochs'} {a}{'' if a == b else f'-{b}'})"
             for a, b, s in spans]
    if len(spans) == 1:
        parts = [f"{spans[0][2]} px"]
    if not spans:
        return f"test {test_size} px"
    return f"train {', '.join(parts)}; test {test_size} px"


def _number(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0
