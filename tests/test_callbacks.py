"""Callbacks (`callbacks=` or fastai's `cbs=`): the events of a fit, in order, with the
Learner's state a logger needs at each."""
from __future__ import annotations

import math

import pytest
import torch

from fakes import FakeDataLoaders, tiny_net
from resnette.train import (Callback, CancelBatchException, CancelEpochException,
                            CancelFitException, CancelTrainException, CancelValidException,
                            Learner)
from resnette.train.callbacks import EVENTS


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


class Every(Callback):
    """Writes down the name of every fastai event it hears."""

    def __init__(self, cancel: dict | None = None):
        self.seen: list[str] = []
        self.cancel = cancel or {}   # event -> exception to raise there (once)

    def __getattribute__(self, name):
        if name in EVENTS:
            def hear(learn, name=name):
                self.seen.append(name)
                if name in self.cancel:
                    raise self.cancel.pop(name)()
            return hear
        return super().__getattribute__(name)


for _event in EVENTS:   # a class attribute per event, so the Learner knows Every listens to it
    setattr(Every, _event, lambda self, learn: None)


def test_fastais_events_in_fastais_order():
    cb = Every()
    learn = Learner(FakeDataLoaders(n_train=32, n_valid=8), tiny_net(), quiet=True, cbs=[cb])
    learn.fit(1, 1e-2)
    batch = ["before_batch", "after_pred", "after_loss", "before_backward", "after_backward",
             "before_step", "after_step", "after_batch"]
    assert cb.seen == ["after_create", "before_fit", "before_epoch", "before_train",
                       *batch, *batch, "after_train", "before_validate", "after_validate",
                       "after_epoch", "after_fit"]


def test_cancel_batch_skips_the_step_and_still_runs_after_batch():
    cb = Every({"before_batch": CancelBatchException})
    learn = Learner(FakeDataLoaders(n_train=32, n_valid=8), tiny_net(), quiet=True, cbs=[cb])
    learn.fit(1, 1e-2)
    first = cb.seen[cb.seen.index("before_batch"):][:3]
    assert first == ["before_batch", "after_cancel_batch", "after_batch"]
    assert cb.seen.count("after_step") == 1 and len(learn.recorder.losses) == 1


def test_cancel_train_still_validates_and_cancel_valid_leaves_the_metrics_blank():
    cb = Every({"after_batch": CancelTrainException})
    learn = Learner(FakeDataLoaders(), tiny_net(), quiet=True, cbs=[cb])
    learn.fit(1, 1e-2)
    assert cb.seen.count("before_batch") == 1
    assert "after_cancel_train" in cb.seen and "after_validate" in cb.seen
    assert math.isfinite(learn.recorder.rows[0]["valid_loss"])
    cb = Every({"before_validate": CancelValidException})
    learn = Learner(FakeDataLoaders(), tiny_net(), quiet=True, cbs=[cb])
    learn.fit(1, 1e-2)
    assert cb.seen[-5:] == ["before_validate", "after_cancel_validate", "after_validate",
                            "after_epoch", "after_fit"]
    assert math.isnan(learn.recorder.rows[0]["valid_loss"])


def test_cancel_epoch_and_cancel_fit_end_where_fastai_ends():
    cb = Every({"before_train": CancelEpochException})
    learn = Learner(FakeDataLoaders(), tiny_net(), quiet=True, cbs=[cb])
    learn.fit(2, 1e-2)
    assert cb.seen[2:6] == ["before_epoch", "before_train", "after_cancel_epoch", "after_epoch"]
    assert len(learn.recorder.rows) == 2 and cb.seen.count("before_batch") == 6   # epoch 1's
    cb = Every({"after_epoch": CancelFitException})
    learn = Learner(FakeDataLoaders(), tiny_net(), quiet=True, cbs=[cb])
    learn.fit(3, 1e-2)
    assert cb.seen[-3:] == ["after_epoch", "after_cancel_fit", "after_fit"]
    assert len(learn.recorder.rows) == 1


def test_callbacks_added_after_creation_are_heard_as_fastais_are():
    appended, added = Every(), Every()
    learn = learner()
    learn.cbs.append(appended)   # a list, as fastai's learn.cbs: appending works
    learn.add_cb(added)
    learn.fit(1, 1e-2)
    assert appended.seen.count("after_fit") == 1 and added.seen.count("after_fit") == 1
    assert appended.seen.count("before_batch") == added.seen.count("before_batch") > 0


def test_a_callback_hears_only_the_events_it_overrides():
    class OnlyFit(Callback):
        def before_fit(self, learn):
            self.fits = getattr(self, "fits", 0) + 1

    cb = OnlyFit()
    learn = learner(cbs=[cb])
    learn.fit(1, 1e-2)
    assert cb.fits == 1 and not hasattr(Callback, "before_batch")   # nothing to call per batch


def test_each_trick_keeps_its_state_in_its_callback_and_the_checkpoint(tmp_path):
    learn = learner(ema=0.9, mixup=0.4, progressive=[(1, 12)], run_dir=tmp_path)
    assert [cb.name for cb in learn.cbs] == ["progressive_resize", "mix_batch",
                                              "average_weights", "save_run"]
    learn.fit(2, 1e-2)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    ema = learn.cbs[2].ema.module.state_dict()
    assert set(state["callbacks"]) == {"average_weights"}
    assert all(torch.equal(state["callbacks"]["average_weights"][k], v) for k, v in ema.items())
