"""Starting and finishing fast (issue 13 #5), checked by behaviour, never by a clock: what an
import loads, how often training validates, and that a run folder still gets every file
(the plots drawn from the files training saved, by `resnette report` or in the background).
The time itself is measured by benchmarks/startup.py."""
import json
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import resnette.commands.evaluate as evaluate_mod
import resnette.train.evaluation as evaluation
from resnette.commands.report import build_report
from resnette.commands.train import train
from resnette.run.config import make_config
from resnette.run.folder import PLOT_NAMES, Run, read_metrics
from resnette.train.learner import Learner

HEAVY = ("matplotlib", "sklearn", "scipy", "onnx", "onnxscript", "tensorboard", "pandas")


def loaded_after(code: str) -> set[str]:
    """Top-level modules loaded by a fresh interpreter that runs `code`."""
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json\n"
                          "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_import_resnette_is_cheap_and_its_public_names_still_work():
    assert "torch" not in loaded_after("import resnette")
    loaded = loaded_after("import resnette\n"
                          "assert callable(resnette.data.folder) and callable(resnette.models.create_model)\n"
                          "assert resnette.Learner.__name__ == 'Learner'\n"
                          "assert issubclass(resnette.ResnetteError, Exception)\n"
                          "assert {'Learner', 'data', 'models'} <= set(dir(resnette))\n"
                          "from resnette import Learner, data, models")
    assert "torch" in loaded   # the names are real, imported on first use
    with pytest.raises(AttributeError):
        import resnette
        resnette.not_a_name  # noqa: B018


def test_the_command_line_imports_no_plotting_no_sklearn_no_onnx():
    for code in ("import resnette.cli", "import resnette.commands.train",
                 "from resnette.cli import build_parser; build_parser()"):
        assert not (loaded_after(code) & set(HEAVY)), code


def test_digits_are_read_without_sklearn_and_equal_sklearns_load_digits():
    # the expected arrays come from scikit-learn itself
    from sklearn.datasets import load_digits
    from resnette.data.digits import _load_digits
    images, target = _load_digits()
    bunch = load_digits()
    assert np.array_equal(images, bunch.images) and np.array_equal(target, bunch.target)
    assert not ({"sklearn", "scipy"} & loaded_after(
        "from resnette.data import digits; digits(bs=64)"))


def folder(root):
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("valid", 5)):
        for c, base in (("dark", 110), ("light", 145)):   # close enough to get some wrong
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(base + rng.normal(0, 80, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i}.png")
    return root


def config(data, name, **more):
    return make_config({}, {**dict(data=str(data), arch="simple_cnn", size=32, presize=32, bs=6,
                                   epochs=2, lr=0.01, device="cpu", precision="fp32", name=name),
                            **more})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return folder(tmp_path_factory.mktemp("startup") / "images")


def test_training_validates_once_per_epoch_and_the_evaluation_is_the_last_epochs(
        data, tmp_path, monkeypatch):
    calls = {"validate": 0, "collect": 0}
    validate, collect = Learner.score, evaluation.collect

    def counted_validate(self, *a, **k):
        calls["validate"] += 1
        return validate(self, *a, **k)

    def counted_collect(*a, **k):
        calls["collect"] += 1
        return collect(*a, **k)
    monkeypatch.setattr(Learner, "score", counted_validate)
    monkeypatch.setattr(evaluate_mod, "collect", counted_collect)
    run = train(config(data, "v"), quiet=True, root=tmp_path / "runs", draw="none")
    assert calls == {"validate": 2, "collect": 0}   # one per epoch, no second pass after
    ev = json.loads(run.evaluation.read_text())
    last = read_metrics(run.metrics)
    assert ev["n"] == 10 and ev["split"] == "valid"
    assert ev["accuracy"] == pytest.approx(last["accuracy"][-1], abs=1e-6)   # float32 mean
    # the same probabilities: the loss differs only by float32's rounding of log(softmax)
    assert ev["cross_entropy"] == pytest.approx(last["valid_loss"][-1], rel=1e-5, abs=1e-6)
    # and the numbers are those of a separate pass over the valid set with the final weights
    from resnette.run.trained import load_trained
    from resnette.run.setup import build_data
    trained = load_trained(run.model)   # the final weights (a run folder would give the best)
    dls = build_data(trained.config, augment=False)
    probs, targets = collect(trained.model, dls.valid)
    separate = evaluation.summarize(probs, targets, trained.names)
    assert ev["confusion"] == separate["confusion"]
    assert ev["cross_entropy"] == pytest.approx(separate["cross_entropy"], rel=1e-5, abs=1e-6)
    assert not any(run.plots.glob("*.png"))   # draw="none": numbers only


def test_the_run_folder_gets_every_plot_without_holding_up_the_command(data, tmp_path):
    run = train(config(data, "p"), quiet=True, root=tmp_path / "runs", draw="none")
    for kind in ("batch", "top_losses"):
        assert run.pixels(kind).stat().st_size > 0, kind   # what the grids are drawn from
    build_report(run.path)   # `resnette report RUN` draws everything from the files
    for kind in ("curves", "confusion", "batch", "top_losses"):
        assert run.plot(kind).stat().st_size > 1000, kind
    assert "data:image/png;base64" in run.report.read_text()

    waited = train(config(data, "w"), quiet=True, root=tmp_path / "runs", draw="wait")
    assert {p.name for p in waited.plots.glob("*.png")} >= {
        PLOT_NAMES[k] for k in ("curves", "confusion", "batch", "top_losses")}


def test_the_command_draws_the_plots_and_report_in_a_detached_process(data, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "resnette", "train", "--data", str(data),
                           "--arch", "simple_cnn", "--size", "32", "--presize", "32", "--bs", "6",
                           "--epochs", "1", "--device", "cpu", "--quiet", "--name", "bg"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = Run(tmp_path / "runs" / "bg")
    assert run.evaluation.is_file() and run.metrics.is_file()   # saved before the command returned
    deadline = time.monotonic() + 180   # the background `resnette report` (a loaded CI machine)
    while not run.report.is_file() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert run.report.is_file()
    for kind in ("curves", "confusion", "batch", "top_losses"):
        assert run.plot(kind).stat().st_size > 1000, kind


def test_compile_time_is_the_first_batchs_time_apart_from_the_epoch(data, tmp_path):
    """--compile's report (`torch.compile: the first training batch took ...`) comes from this
    callback; here without compiling (30 s on this CPU): it times batch 0 of epoch 0 only."""
    from resnette.run.setup import build_data, make_learner, model_for
    from resnette.train.callbacks import CompileTime
    cfg = config(data, "c", epochs=1)
    dls = build_data(cfg)
    timer = CompileTime()
    learn = make_learner(cfg, dls, model_for(cfg, dls.c, dls.channels), None, True, callbacks=[timer])
    assert timer.seconds is None
    learn.fit_one_cycle(1, 0.01)
    row = learn.recorder.rows[0]
    assert timer.epoch == 0 and 0 < timer.seconds < row["time"]
