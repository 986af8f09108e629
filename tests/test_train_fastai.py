"""The Learner a fastai user expects: get_preds, validate, show_results, lr_find's SuggestedLRs,
the recorder's plots, ClassificationInterpretation, save/load by name, export/load_learner,
to_fp16 on a CPU, summary; each checked on its numbers and its figure's content."""
from __future__ import annotations

import re
import tomllib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fakes import FakeDataLoaders, image_folder, tiny_net
from resnette.data import folder
from resnette.models import create_model
from resnette.train import ClassificationInterpretation, Learner, SuggestedLRs, load_learner
from resnette.train.precision import autocast, cpu_has_native_bf16
from resnette.utils import ResnetteError


def learner(**kw):
    torch.manual_seed(0)
    return Learner(FakeDataLoaders(), tiny_net(), quiet=True, **kw)


@pytest.fixture(scope="module")
def trained():
    learn = learner(lr=1e-2)
    learn.fit_one_cycle(2)
    return learn


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A Learner on resnette's own loaders (which can give back their images), trained a bit."""
    root = image_folder(tmp_path_factory.mktemp("imgs"), n_train=12, n_valid=6,
                        classes=("dark", "mid", "light"), size=32, levels=(30, 128, 225))
    dls = folder(root, size=32, presize=32, bs=6, seed=0)
    torch.manual_seed(0)
    learn = Learner(dls, create_model("xresnet18", n_out=dls.c, c_in=3), quiet=True, lr=1e-2,
                    run_dir=tmp_path_factory.mktemp("run"), arch="xresnet18")
    learn.fit_one_cycle(1)
    return learn


@pytest.mark.parametrize("precision,atol", [("fp32", 1e-5), ("bf16", 2e-2)])
def test_get_preds_is_probabilities_targets_decoded_and_losses_in_order(precision, atol):
    """get_preds runs in the training precision (as fastai's does): compared with the model run
    by hand in that precision, to that precision's tolerance (bf16 keeps 8 bits of mantissa)."""
    learn = learner(lr=1e-2, precision=precision)
    learn.fit_one_cycle(1)
    probs, targs, decoded, losses = learn.get_preds(with_decoded=True, with_loss=True)
    x = torch.cat([xb for xb, _ in learn.dls.valid])
    y = torch.cat([yb for _, yb in learn.dls.valid])
    with torch.no_grad(), autocast(precision, "cpu"):
        logits = learn.model.eval()(x).float()
    assert probs.dtype == torch.float32 and probs.shape == (40, 3)
    assert torch.allclose(probs.sum(1), torch.ones(40), atol=1e-5)
    assert torch.allclose(probs, logits.softmax(1), atol=atol)   # fastai: softmax for CE
    assert torch.equal(targs, y) and torch.equal(decoded, probs.argmax(1))
    assert torch.allclose(losses, F.cross_entropy(logits, y, reduction="none"), atol=atol * 5)
    assert len(learn.get_preds()) == 2


def test_validate_is_fastais_list_of_valid_loss_and_metrics(trained):
    values = trained.validate()
    assert isinstance(values, list) and values == pytest.approx(list(trained.score().values()))
    probs, targs = trained.get_preds()
    assert values[1] == pytest.approx(float((probs.argmax(1) == targs).float().mean()))
    assert values[0] == pytest.approx(float(F.nll_loss(probs.log(), targs)), rel=1e-4)


def test_lr_find_returns_suggested_lrs_by_fastais_names_with_the_curve():
    found = learner().lr_find(num_it=20)
    assert isinstance(found, SuggestedLRs)
    assert re.fullmatch(r"SuggestedLRs\(valley=[\d.e-]+, steep=[\d.e-]+, minimum=[\d.e-]+\)",
                        repr(found))
    valley, steep, minimum = found
    assert (valley, steep, minimum) == (found.valley, found.steep, found.minimum)
    assert len(found.lrs) == len(found.losses) == 20 and found.lrs[0] == 1e-7
    fig = found.plot()
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_title() == "learning rate finder"
    assert len(ax.lines[0].get_xdata()) == 15   # fastai leaves the last 5 points out
    assert sorted(t.get_text().split(":")[0] for t in ax.get_legend().get_texts()) == \
        ["minimum/10", "steep", "valley"]


def test_lr_find_without_a_run_or_notebook_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    learner().lr_find(num_it=10)
    assert list(tmp_path.iterdir()) == []


def test_recorder_plots_the_loss_per_batch_and_the_schedules(trained, tmp_path):
    rec = trained.recorder
    fig = rec.plot_loss(path=tmp_path / "loss.png")
    train, valid = fig.axes[0].lines
    assert list(train.get_ydata()) == pytest.approx(rec.smooth_losses[5:])
    assert list(valid.get_xdata()) == [6, 12]   # each epoch's last batch (6 a epoch)
    assert list(valid.get_ydata()) == pytest.approx([r["valid_loss"] for r in rec.rows])
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    sched = rec.plot_sched()
    assert [ax.get_title() for ax in sched.axes] == ["lr", "mom"]
    assert list(sched.axes[0].lines[0].get_ydata()) == pytest.approx(rec.lrs)
    assert [ax.get_title() for ax in rec.plot_lr().axes] == ["lr"]


def test_show_results_titles_actual_and_predicted_in_green_or_red(real):
    fig = real.show_results(max_n=4)
    shown = [ax for ax in fig.axes if ax.images]
    _, targs, decoded = real.get_preds(with_decoded=True)
    assert len(shown) == 4
    for ax, t, d in zip(shown, targs, decoded):
        assert ax.get_title() == f"{real.dls.names[t]}\n{real.dls.names[d]}"
        assert ax.title.get_color() == ("green" if t == d else "red")


def test_classification_interpretation_matches_the_predictions(real):
    interp = ClassificationInterpretation.from_learner(real)
    probs, targs, decoded = real.get_preds(with_decoded=True)
    cm = interp.confusion_matrix()
    want = np.zeros((3, 3), dtype=np.int64)
    for t, d in zip(targs.tolist(), decoded.tolist()):
        want[t, d] += 1
    assert (cm == want).all() and cm.sum() == 18
    confused = interp.most_confused()
    off = [(real.dls.vocab[i], real.dls.vocab[j], int(want[i, j]))
           for i in range(3) for j in range(3) if i != j and want[i, j] >= 1]
    assert confused == sorted(off, key=lambda c: c[2], reverse=True)
    assert interp.most_confused(min_val=100) == []
    losses, idx = interp.top_losses(3)
    assert list(losses) == sorted(interp.losses.tolist(), reverse=True)[:3]
    fig = interp.plot_top_losses(3)
    assert len([ax for ax in fig.axes if ax.images]) == 3
    cm_fig = interp.plot_confusion_matrix()
    assert cm_fig.axes[0].get_title() == "confusion matrix" and cm_fig.axes[0].images
    texts = sorted(int(t.get_text()) for t in cm_fig.axes[0].texts)
    assert texts == sorted(want.ravel().tolist())


def test_save_and_load_by_name_in_the_runs_models_folder(real):
    path = real.save("stage1")
    assert path == real.run_dir / "models" / "stage1.safetensors"
    assert path.read_bytes()[8:9] == b"{"   # a safetensors header, not a pickle
    weights = {k: v.clone() for k, v in real.model.state_dict().items()}
    opt_state = real.opt.state_dict()["state"]
    with torch.no_grad():
        for p in real.model.parameters():
            p.add_(1.0)
    assert real.load("stage1") is real
    for k, v in real.model.state_dict().items():
        assert torch.equal(v, weights[k])
    after = real.opt.state_dict()["state"]
    assert all(torch.equal(after[i]["exp_avg"], opt_state[i]["exp_avg"]) for i in opt_state)
    with pytest.raises(ResnetteError, match="no saved weights"):
        real.load("never-saved")


def test_export_and_load_learner_rebuild_the_same_predictions(real, tmp_path):
    folder_ = real.export(tmp_path / "exported")
    info = tomllib.loads((folder_ / "learner.toml").read_text())
    assert info["arch"]["name"] == "xresnet18" and info["data"]["vocab"] == real.dls.vocab
    assert info["data"]["mean"] == pytest.approx(list(real.dls.mean))
    loaded = load_learner(folder_)
    x = next(iter(real.dls.valid))[0]
    assert torch.allclose(loaded.predict(x), real.predict(x), atol=1e-5)
    assert loaded.dls.vocab == real.dls.vocab and loaded.dls.c == 3


def test_export_refuses_a_model_not_built_by_the_registry(trained, tmp_path):
    with pytest.raises(ResnetteError, match="export needs a model built by resnette's registry"):
        trained.export(tmp_path / "x")


def test_to_fp16_on_a_cpu_trains_in_bf16_where_native_else_fp32_and_says_so(capsys):
    learn = Learner(FakeDataLoaders(), tiny_net(), precision="fp32")
    assert learn.to_fp16() is learn
    assert learn.precision == ("bf16" if cpu_has_native_bf16() else "fp32")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("to_fp16: this CPU has no fast float16")
    assert learn.to_bf16().precision == "bf16" and learn.to_fp32().precision == "fp32"
    assert not learn.scaler.is_enabled()


def test_summary_counts_every_parameter(trained):
    s = trained.summary()
    assert s.params == sum(p.numel() for p in trained.model.parameters())
    assert s.size == 16 and "total params" in str(s)


def test_a_model_with_the_wrong_number_of_outputs_fails_at_the_first_batch():
    learn = Learner(FakeDataLoaders(), tiny_net(c=5), quiet=True)
    with pytest.raises(ResnetteError, match=r"data has 3 classes \(dls.c\); build it with n_out=3"):
        learn.fit(1, 1e-2)
    assert learn.recorder.losses == []   # not one step taken


def test_a_metric_that_returns_no_number_fails_at_the_first_batch():
    def named(pred, targ):
        return "good"

    learn = Learner(FakeDataLoaders(), tiny_net(), quiet=True, metrics=["accuracy", named])
    with pytest.raises(ResnetteError, match="metric 'named' returned str 'good'; a metric returns"):
        learn.fit(1, 1e-2)
    assert learn.recorder.losses == []


def test_lr_find_puts_every_callbacks_state_back():
    learn = learner(ema=0.5)
    learn.fit(1, 1e-2)
    before = {k: v.clone() for k, v in learn.ema.module.state_dict().items()}
    learn.lr_find(num_it=8)
    assert all(torch.equal(v, before[k]) for k, v in learn.ema.module.state_dict().items())
