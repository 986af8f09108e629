"""The Learner's loop: it learns, prints the chapter's table, repeats itself given a seed,
follows the schedule, and its options (precision, EMA, TTA, progressive resizing) do what they say."""
from __future__ import annotations

import math
import re

import pytest
import torch

from resnette.train import Learner
from resnette.train.schedules import Schedule
from resnette.utils import ResnetteError
from fakes import FakeDataLoaders, tiny_net


def make_learner(seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault("quiet", True)
    return Learner(FakeDataLoaders(), tiny_net(), seed=seed, **kw)


def test_fit_one_cycle_learns_and_prints_the_chapters_table(capsys):
    learn = make_learner(quiet=False)
    before = learn.score()
    learn.fit_one_cycle(4, 1e-2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    assert [ln.split()[0] for ln in lines[1:]] == ["0", "1", "2", "3"]
    assert re.fullmatch(r"\d\d:\d\d", lines[1].split()[-1])
    assert re.fullmatch(r"\d\.\d{6}", lines[1].split()[1])
    after = learn.score()
    assert after["accuracy"] > 0.9 > before["accuracy"]
    assert after["valid_loss"] < before["valid_loss"]
    rows = learn.recorder.rows
    assert len(rows) == 4 and rows[-1]["accuracy"] == pytest.approx(after["accuracy"])


def test_recorder_follows_the_one_cycle_schedule_every_batch():
    learn = make_learner()
    learn.fit_one_cycle(2, 1e-2)
    n = 2 * len(learn.dls.train)
    rec = learn.recorder
    assert len(rec.losses) == len(rec.lrs) == len(rec.moms) == len(rec.smooth_losses) == n
    sched = Schedule("one_cycle", 2, 1e-2)
    for i in range(n):
        lr, mom = sched(i / n)
        assert rec.lrs[i] == pytest.approx(lr) and rec.moms[i] == pytest.approx(mom)
    assert rec.lrs[0] == pytest.approx(1e-2 / 25) and rec.moms[0] == pytest.approx(0.95)
    assert max(rec.lrs) <= 1e-2 and rec.lrs[-1] < 1e-2 / 20
    # Adam's beta1 is the momentum that cycles
    assert learn.opt.param_groups[0]["betas"][0] == pytest.approx(rec.moms[-1])
    # train_loss in the table is fastai's smoothed loss
    assert rec.rows[-1]["train_loss"] == pytest.approx(rec.smooth_losses[-1])


def test_fit_flat_cos_and_fit_keep_lr_flat_then_anneal():
    learn = make_learner(opt="ranger")
    learn.fit_flat_cos(2, 1e-2)
    lrs = learn.recorder.lrs
    assert lrs[:10] == [1e-2] * 10 and lrs[10] < 1e-2
    # last batch: pos 11/12 is 2/3 into the cosine, lr = lr - 0.75 * (lr - lr/1e5)
    assert lrs[-1] == pytest.approx(1e-2 - 0.75 * (1e-2 - 1e-7))
    learn.fit(1, 3e-3)
    assert learn.recorder.lrs == [3e-3] * len(learn.dls.train)


def test_the_same_seed_gives_identical_metrics_and_weights():
    a, b = make_learner(seed=1, mixup=0.4), make_learner(seed=1, mixup=0.4)
    a.fit_one_cycle(2, 1e-2)
    b.fit_one_cycle(2, 1e-2)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]
    assert strip(a.recorder.rows) == strip(b.recorder.rows)
    for (k, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), k
    c = make_learner(seed=2, mixup=0.4)
    c.fit_one_cycle(2, 1e-2)
    assert strip(c.recorder.rows) != strip(a.recorder.rows)


def test_metrics_are_computed_over_the_whole_validation_set():
    learn = make_learner(metrics=["accuracy", "error_rate", "top_k_accuracy"])
    learn.fit_one_cycle(1, 1e-2)
    res = learn.score()   # 40 images in batches of 16, 16, 8
    model = learn.model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        pred = model(learn.dls.valid.x).float()
    y = learn.dls.valid.labels
    assert res["accuracy"] == pytest.approx((pred.argmax(1) == y).float().mean().item())
    assert res["error_rate"] == pytest.approx((pred.argmax(1) != y).float().mean().item())
    assert res["top_k_accuracy"] == 1.0   # 3 classes: the label is always in the top 5
    loss = torch.nn.functional.cross_entropy(pred, y).item()
    assert res["valid_loss"] == pytest.approx(loss, rel=2e-2)


def test_precision_choices():
    with pytest.raises(ResnetteError, match="precision"):
        make_learner(precision="fp8")
    with pytest.raises(ResnetteError, match="fp16 needs a CUDA GPU"):   # the CLI's answer too
        make_learner(precision="fp16")
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert make_learner().precision == ("bf16" if native else "fp32")   # auto
    bf16 = make_learner(precision="bf16")
    bf16.fit(1, 1e-2)
    assert bf16.precision == "bf16" and math.isfinite(bf16.recorder.rows[0]["valid_loss"])
    learn = make_learner(precision="fp32", channels_last=False)
    learn.fit_one_cycle(1, 1e-2)
    assert math.isfinite(learn.recorder.rows[0]["valid_loss"])


def test_flip_tta_averages_the_image_and_its_mirror():
    learn = make_learner(precision="fp32")
    x = learn.dls.valid.x[:5]
    p = learn.predict(x, tta=True)
    with torch.no_grad():
        m = learn.model.eval()
        want = (m(x).softmax(1) + m(x.flip(3)).softmax(1)) / 2
    assert torch.allclose(p, want, atol=1e-5)
    assert torch.allclose(learn.predict(x[0]), m(x[:1]).softmax(1)[0].detach(), atol=1e-5)
    assert set(learn.score(tta=True)) == {"valid_loss", "accuracy"}


def test_ema_weights_are_what_validate_evaluates():
    learn = make_learner(ema=0.9, precision="fp32")
    learn.fit_one_cycle(2, 1e-2)
    ema_w = learn.ema.module.state_dict()
    live_w = learn.model.state_dict()
    assert not torch.equal(ema_w["0.weight"], live_w["0.weight"])
    with_ema = learn.validate()
    learn.model.load_state_dict(ema_w)
    learn.cbs = [cb for cb in learn.cbs if cb.name != "average_weights"]
    assert learn.ema is None and learn.validate() == pytest.approx(with_ema)


def test_progressive_resizing_sets_the_train_size_at_each_epoch():
    learn = make_learner(progressive=[(1, 12), (2, 20)])
    learn.fit_one_cycle(3, 1e-2)
    assert learn.dls.train.sizes_seen == [16, 12, 20]
    assert learn.dls.valid.sizes_seen[-1] == 16


def test_gradient_clipping_limits_the_step():
    free, clipped = make_learner(opt="sgd", wd=0), make_learner(opt="sgd", wd=0, clip=1e-6)
    w0 = clipped.model[0].weight.detach().clone()
    free.fit(1, 0.1)
    clipped.fit(1, 0.1)
    moved = lambda m: (m.model[0].weight - w0).norm().item()
    assert moved(clipped) < 1e-3 < moved(free)


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ResnetteError, match="optimizer"):
        make_learner(opt="lamb")
    with pytest.raises(ResnetteError, match="metric"):
        make_learner(metrics=["f1"])
    with pytest.raises(ResnetteError, match="epoch"):
        make_learner().fit_one_cycle(0, 1e-3)
    with pytest.raises(ResnetteError, match="unknown Learner setting 'lrr' .did you mean 'lr'"):
        make_learner(lrr=1e-3)


def test_the_learner_and_the_config_refuse_a_value_with_the_same_limits():
    from resnette.run.config import make_config
    for key, bad in (("label_smoothing", 1.0), ("ema", 1.5), ("lr", -1.0), ("clip", 0.0)):
        with pytest.raises(ResnetteError) as api:
            make_learner(**{key: bad})
        with pytest.raises(ResnetteError) as cli:
            make_config({key: bad})
        assert str(api.value).replace("setting", "config key") == str(cli.value)
