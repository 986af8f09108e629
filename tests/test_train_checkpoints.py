"""Checkpoints: written every epoch, safe to load, and a resumed run ends exactly where the
uninterrupted one does, whether it was killed after an epoch or stopped by a signal mid-epoch."""
from __future__ import annotations

import os
import pickle
import signal

import pytest
import torch
from safetensors.torch import load_file

from resnette.train import Learner, TrainingInterrupted, load_checkpoint
from resnette.utils import ResnetteError
from fakes import FakeDataLoaders, tiny_net


def make_learner(run_dir=None, seed=0, c=3, **kw):
    torch.manual_seed(seed)
    return Learner(FakeDataLoaders(c=c), tiny_net(c), seed=seed, run_dir=run_dir, quiet=True,
                   mixup=0.4, ema=0.9, **kw)


def rows_without_time(learn):
    return [{k: v for k, v in r.items() if k != "time"} for r in learn.recorder.rows]


def assert_same_run(a, b):
    assert rows_without_time(a) == rows_without_time(b)
    for (k, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), k
    for p, q in zip(a.ema.state_dict().values(), b.ema.state_dict().values()):
        assert torch.equal(p, q)
    assert a.recorder.losses == b.recorder.losses and a.recorder.lrs == b.recorder.lrs


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    learn = make_learner(tmp_path_factory.mktemp("full"))
    learn.fit_one_cycle(4, 1e-2)
    return learn


def test_every_epoch_writes_checkpoint_weights_and_metrics(uninterrupted):
    run = uninterrupted.run_dir
    state = torch.load(run / "checkpoint.pt", weights_only=True)   # plain data only
    assert state["position"] == {"epoch": 4, "batch": 0}
    assert state["vocab"] == ["class0", "class1", "class2"]
    assert state["config"]["opt"] == "adamw" and state["schedule"]["kind"] == "one_cycle"
    weights = load_file(run / "model.safetensors")
    for k, v in uninterrupted.ema.state_dict().items():   # the shared weights are the EMA ones
        assert torch.equal(weights[k], v)
    lines = (run / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,valid_loss,accuracy,time" and len(lines) == 5
    assert float(lines[4].split(",")[3]) == uninterrupted.recorder.rows[3]["accuracy"]
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_resume_after_a_crash_at_epoch_two_matches_the_uninterrupted_run(tmp_path, uninterrupted):
    learn = make_learner(tmp_path)

    def crash(epoch, batch):
        if epoch == 2:
            raise RuntimeError("power cut")
    learn.dls.train.on_batch = crash
    with pytest.raises(RuntimeError):
        learn.fit_one_cycle(4, 1e-2)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["position"] == {"epoch": 2, "batch": 0}

    torch.manual_seed(123)   # a new process: different global RNG, fresh model
    resumed = make_learner(tmp_path, seed=0)
    resumed.fit_one_cycle(4, 1e-2, resume=True)
    assert_same_run(resumed, uninterrupted)
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 5


def test_sigint_mid_epoch_saves_the_batch_position_and_resumes_exactly(tmp_path, uninterrupted):
    learn = make_learner(tmp_path)
    before = signal.getsignal(signal.SIGINT)

    def ctrl_c(epoch, batch):
        if (epoch, batch) == (1, 2):
            os.kill(os.getpid(), signal.SIGINT)
    learn.dls.train.on_batch = ctrl_c
    with pytest.raises(TrainingInterrupted, match=r"SIGINT: stopped at epoch 1, batch 3.*resume"):
        learn.fit_one_cycle(4, 1e-2)
    assert signal.getsignal(signal.SIGINT) is before    # handlers restored after fit
    assert load_checkpoint(tmp_path / "checkpoint.pt")["position"] == {"epoch": 1, "batch": 3}

    resumed = make_learner(tmp_path)
    resumed.fit_one_cycle(4, 1e-2, resume=True)
    assert_same_run(resumed, uninterrupted)


def test_resume_with_other_settings_is_refused(tmp_path, uninterrupted):
    learn = make_learner(uninterrupted.run_dir)
    with pytest.raises(ResnetteError, match="different schedule"):
        learn.fit_one_cycle(5, 1e-2, resume=True)


def test_nan_loss_stops_with_epoch_batch_and_lower_lr_keeping_the_last_good_checkpoint(tmp_path):
    class NanAtCall(torch.nn.CrossEntropyLoss):
        calls = 0

        def forward(self, pred, y):
            NanAtCall.calls += self.reduction == "mean"   # training batches, not validation
            loss = super().forward(pred, y)
            return loss * float("nan") if NanAtCall.calls == 9 else loss

    learn = make_learner(tmp_path, loss_func=NanAtCall())
    learn.cbs = [cb for cb in learn.cbs if cb.name != "mix_batch"]   # no Mixup here
    with pytest.raises(ResnetteError, match=r"epoch 1, batch 2; .*lr=1\.0e-03.*checkpoint.* is kept"):
        learn.fit_one_cycle(3, 1e-2)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["position"] == {"epoch": 1, "batch": 0}
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_a_checkpoint_from_another_architecture_or_class_count_is_refused(uninterrupted):
    path = uninterrupted.run_dir / "checkpoint.pt"
    other_classes = make_learner(c=5)
    with pytest.raises(ResnetteError, match="3 classes but this model has 5"):
        other_classes.load_checkpoint(path)
    other_arch = Learner(FakeDataLoaders(), torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(768, 3)),
                         quiet=True)
    with pytest.raises(ResnetteError, match="another architecture"):
        other_arch.load_checkpoint(path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-pickle",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": "resnette-checkpoint-1", "model": _RunsCode()}, f, protocol=2)
    torch.save({"format": "resnette-checkpoint-1", "x": _RunsCode()}, tmp_path / "evil2.pt")
    for p in (path, tmp_path / "evil2.pt"):
        with pytest.raises(ResnetteError, match="refusing to load .*could run code.*system"):
            load_checkpoint(p)
    with open(tmp_path / "evil3.pt", "wb") as f:   # protocol 5: refused before it gets that far
        pickle.dump({"model": _RunsCode()}, f, protocol=5)
    with pytest.raises(ResnetteError, match="refusing to load"):
        load_checkpoint(tmp_path / "evil3.pt")
    assert not (tmp_path / "pwned-by-pickle").exists()
    assert pickle.loads(pickle.dumps(_RunsCode(), protocol=2)) == 0   # the payload does run ...
    assert (tmp_path / "pwned-by-pickle").exists()                    # ... when unpickled plainly
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ResnetteError, match="damaged"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(ResnetteError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
