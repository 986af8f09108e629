"""`metrics=` takes names, resnette's functions and fastai-style functions returning a batch
MEAN, and the Learner's result is the exact per-item average over the whole validation set,
also when the last batch is smaller (10 items in batches of 4, 4, 2)."""
from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from resnette.train import Learner, accuracy, error_rate, top_k_accuracy
from resnette.train.metrics import get_metrics
from resnette.utils import ResnetteError

# Logits over 3 classes for 10 items; the model passes them through unchanged.
LOGITS = torch.tensor([[3., 2, 1], [0, 5, 1], [0, 1, 4], [2, 1, 0],     # batch 1: 4 items
                       [1, 3, 2], [1, 0, 9], [4, 1, 3], [1, 2, 3],      # batch 2: 4 items
                       [5, 1, 0], [1, 7, 2]])                           # batch 3: 2 items
TARGETS = torch.tensor([0, 1, 2, 1,    1, 0, 2, 0,    1, 0])
# By hand: argmax = 0 1 2 0 | 1 2 0 2 | 0 1 -> correct: 1 1 1 0 | 1 0 0 0 | 0 0 = 4 of 10.
# Per-batch accuracies 3/4, 1/4, 0/2: their plain mean, 1/3, is the wrong answer.
HAND_ACCURACY = 4 / 10
# Top-2 by hand: [0,1] [1,2] [2,1] [0,1] | [1,2] [2,0] [0,2] [2,1] | [0,1] [1,2]
# label in top-2:  y     y     y     y   |  y     y     y     n   |  y     n  -> 8 of 10


class Loader:
    def __init__(self, bs: int):
        self.bs = bs

    def __iter__(self):
        for i in range(0, len(TARGETS), self.bs):
            yield LOGITS[i:i + self.bs], TARGETS[i:i + self.bs]

    def __len__(self):
        return -(-len(TARGETS) // self.bs)


def pass_through() -> nn.Module:
    lin = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(3))
    return lin


def validate(metrics, bs: int = 4) -> dict[str, float]:
    dls = SimpleNamespace(train=Loader(bs), valid=Loader(bs), vocab=["a", "b", "c"])
    learn = Learner(dls, pass_through(), metrics=metrics, precision="fp32", quiet=True)
    return learn.score()


def my_acc(pred, targ):
    """A fastai-style metric: the batch MEAN."""
    return (pred.argmax(1) == targ).float().mean()


def test_the_batches_are_unequal():
    assert [len(y) for _, y in Loader(4)] == [4, 4, 2]


@pytest.mark.parametrize("metrics", [["accuracy"], [accuracy], accuracy, "accuracy", [my_acc]],
                         ids=["name", "our function", "a single callable", "a single name",
                              "fastai-style batch mean"])
def test_accuracy_is_exact_over_unequal_batches_however_it_is_given(metrics):
    out = validate(metrics)
    (name,) = [k for k in out if k != "valid_loss"]
    assert name == ("my_acc" if metrics == [my_acc] else "accuracy")
    assert out[name] == pytest.approx(HAND_ACCURACY, abs=1e-6)


def test_every_metric_and_a_partial_by_hand():
    top2 = functools.partial(top_k_accuracy, k=2)
    out = validate(["accuracy", error_rate, top2, my_acc])
    assert list(out) == ["valid_loss", "accuracy", "error_rate", "top_k_accuracy", "my_acc"]
    assert out["accuracy"] == pytest.approx(0.4, abs=1e-6)
    assert out["error_rate"] == pytest.approx(0.6, abs=1e-6)
    assert out["top_k_accuracy"] == pytest.approx(0.8, abs=1e-6)
    assert out["my_acc"] == pytest.approx(0.4, abs=1e-6)


def test_the_default_top_k_is_5_so_every_label_of_3_classes_is_found():
    assert validate(["top_k_accuracy"])["top_k_accuracy"] == pytest.approx(1.0)


def test_the_public_functions_return_batch_means_as_fastai():
    p, y = LOGITS[:4], TARGETS[:4]
    assert float(accuracy(p, y)) == pytest.approx(3 / 4)
    assert float(error_rate(p, y)) == pytest.approx(1 / 4)
    assert float(top_k_accuracy(p, y, k=1)) == pytest.approx(3 / 4)


def test_the_loop_gets_batch_sums():
    p, y = LOGITS[8:], TARGETS[8:]                                   # the short batch: 0 of 2 right
    sums = get_metrics(["accuracy", my_acc, error_rate])
    assert [float(f(p, y)) for f in sums.values()] == [0.0, 0.0, 2.0]
    p, y = LOGITS[:4], TARGETS[:4]
    assert [float(f(p, y)) for f in sums.values()] == [3.0, 3.0, 1.0]


@pytest.mark.parametrize("metrics, msg", [
    (["f1"], "unknown metric 'f1'"),
    ([accuracy, "accuracy"], "'accuracy' is given twice"),
    ([42], "names or functions"),
])
def test_bad_metrics_are_one_line(metrics, msg):
    with pytest.raises(ResnetteError, match=msg) as e:
        get_metrics(metrics)
    assert "\n" not in str(e.value)


def test_a_metric_returning_one_value_per_item_is_refused_clearly():
    per_item = get_metrics(lambda pred, targ: (pred.argmax(1) == targ).float())["<lambda>"]
    with pytest.raises(ResnetteError, match="one number per batch"):
        per_item(LOGITS[:4], TARGETS[:4])
