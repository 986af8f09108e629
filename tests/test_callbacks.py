"""Callbacks (`callbacks=` or fastai's `cbs=`): the events of a fit, in order, with the
Learner's state a logger needs at each."""
from __future__ import annotations

import pytest
import torch

from fakes import FakeDataLoaders, tiny_net
from resnette.train import Callback, Learner


class Events(Callback):
    """Writes down every event, and what a logger would read at each."""

    def __init__(self):
        self.seen, self.rows, self.batches = [], [], []

    def before_fit(self, learn): self.seen.append("before_fit")
    def before_epoch(self, learn): self.seen.append(f"before_epoch {learn.epoch}")
    def before_batch(self, learn): self.seen.append("before_batch")

    def after_batch(self, learn):
        self.seen.append("after_batch")
        self.batches.append((learn.epoch, learn.iter, float(learn.loss)))

    def after_epoch(self, learn):
        self.seen.append(f"after_epoch {learn.epoch}")
        self.rows.append(dict(learn.recorder.rows[-1]))

    def after_fit(self, learn): self.seen.append("after_fit")


def learner(**kw):
    torch.manual_seed(0)
    return Learner(FakeDataLoaders(), tiny_net(), quiet=True, **kw)


@pytest.mark.parametrize("keyword", ["callbacks", "cbs"])
def test_a_callback_sees_every_event_in_order_and_reads_the_epochs_metrics_row(keyword):
    cb = Events()
    learn = learner(**{keyword: [cb]})
    learn.fit_one_cycle(2, 1e-2)
    n = len(learn.dls.train)   # 96 images in batches of 16: 6 a epoch
    epoch = ["before_batch", "after_batch"] * n
    assert cb.seen == ["before_fit", "before_epoch 0", *epoch, "after_epoch 0",
                       "before_epoch 1", *epoch, "after_epoch 1", "after_fit"]
    assert [(e, i) for e, i, _ in cb.batches] == [(e, i) for e in range(2) for i in range(n)]
    assert [b[2] for b in cb.batches] == pytest.approx(learn.recorder.losses)
    # in after_epoch the row of that epoch is already there, metrics and all
    assert cb.rows == learn.recorder.rows
    assert [r["epoch"] for r in cb.rows] == [0, 1] and {"valid_loss", "accuracy", "time"} <= set(cb.rows[0])


def test_a_callback_can_change_the_batch_before_the_step():
    class Blank(Callback):
        def before_batch(self, learn):
            learn.xb = torch.zeros_like(learn.xb)   # the model sees nothing to learn from

    blind, seeing = learner(cbs=[Blank()]), learner()
    blind.fit(2, 1e-2)
    seeing.fit(2, 1e-2)
    assert seeing.recorder.rows[-1]["accuracy"] > 0.9 and blind.recorder.rows[-1]["accuracy"] < 0.5


def test_lr_find_runs_no_user_callbacks():
    cb = Events()
    learner(cbs=[cb]).lr_find(num_it=10)
    assert cb.seen == []
