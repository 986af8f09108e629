"""End to end through the real command line (`python -m resnette ...` subprocesses) on the
digits: train -> run folder -> evaluate -> predict --json -> export -> report, config files
with flag overrides, and --resume after an interruption."""
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("sklearn")

TINY = ["--data", "digits", "--epochs", "1", "--bs", "32", "--quiet"]


def resnette(*args, cwd, check=True, timeout=240):
    proc = subprocess.run([sys.executable, "-m", "resnette", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short digits run (3 epochs, ~10 s), from a config file with a flag overriding it."""
    cwd = tmp_path_factory.mktemp("cli")
    (cwd / "run.toml").write_text('data = "digits"\nepochs = 8\nlr = 0.02\nseed = 1\n')
    resnette("train", "--config", "run.toml", "--epochs", "3", "--name", "d", "--quiet", cwd=cwd)
    return cwd, cwd / "runs" / "d"


def test_train_leaves_a_complete_run_folder(trained):
    _, run = trained
    for f in ("config.toml", "classes.json", "metrics.csv", "model.safetensors",
              "best.safetensors", "checkpoint.pt", "evaluation.json"):
        assert (run / f).is_file(), f
    deadline = time.monotonic() + 180   # the plots: drawn by a background `resnette report`
    while not (run / "report.html").is_file() and time.monotonic() < deadline:
        time.sleep(0.5)
    for png in ("loss_accuracy", "confusion_matrix", "augmented_batch", "top_losses"):
        assert (run / "plots" / f"{png}.png").stat().st_size > 1000, png
    lines = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(lines) == 4  # header + 3 epochs
    accuracy = float(lines[-1].split(",")[lines[0].split(",").index("accuracy")])
    assert accuracy >= 0.9  # the digits defaults learn: 3 of the default 12 epochs suffice
    assert json.loads((run / "classes.json").read_text())["names"] == [str(d) for d in range(10)]


def test_flags_override_the_config_file_and_the_saved_config_is_complete(trained):
    _, run = trained
    saved = tomllib.loads((run / "config.toml").read_text())
    assert (saved["epochs"], saved["lr"], saved["seed"], saved["bs"]) == (3, 0.02, 1, 64)
    assert saved["arch"] == "simple_cnn" and saved["size"] == 32  # the digits preset
    assert saved["name"] == "d"


def test_evaluate_prints_and_saves_the_same_numbers(trained):
    cwd, run = trained
    out = resnette("evaluate", run, "--json", cwd=cwd).stdout
    ev = json.loads(out)
    assert ev["n"] == 359 and 0.9 <= ev["accuracy"] <= 1 and ev["top_k_accuracy"] >= ev["accuracy"]
    assert np.array(ev["confusion"]).sum() == 359
    assert json.loads((run / "evaluation.json").read_text())["accuracy"] == ev["accuracy"]
    assert sorted(ev["per_class"]) == [str(d) for d in range(10)]


def _digit_png(folder, i=0):
    from sklearn.datasets import load_digits
    im = load_digits().images[i]
    path = folder / f"{i}.png"
    Image.fromarray((im * 255 / 16).astype(np.uint8)).resize((32, 32)).save(path)
    return path


def test_predict_json_gives_top_k_names_and_probabilities(trained, tmp_path):
    cwd, run = trained
    for i in range(4):
        _digit_png(tmp_path, i)
    out = json.loads(resnette("predict", run, tmp_path, "--json", "-k", "3", cwd=cwd).stdout)
    assert [Path(p["path"]).name for p in out] == ["0.png", "1.png", "2.png", "3.png"]
    for p in out:
        probs = [c["probability"] for c in p["predictions"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.0001
        assert all(c["class"] in [str(d) for d in range(10)] for c in p["predictions"])
    table = resnette("predict", run / "model.safetensors", tmp_path / "0.png", cwd=cwd).stdout
    assert "0.png" in table and "%" in table


def test_export_and_report(trained):
    cwd, run = trained
    resnette("export", run, "--format", "safetensors", "--out", cwd / "exported", cwd=cwd)
    table = resnette("predict", cwd / "exported" / "model.safetensors", _digit_png(cwd), cwd=cwd)
    assert "%" in table.stdout  # the exported file alone is enough to predict (ONNX: test_export)
    resnette("report", run, cwd=cwd)
    page = (run / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "simple_cnn" in page


def test_an_existing_run_name_is_refused(trained):
    cwd, _ = trained
    proc = resnette("train", *TINY, "--name", "d", cwd=cwd, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: run folder runs/d already exists")


def test_interrupted_training_resumes_to_the_end(tmp_path):
    args = [sys.executable, "-m", "resnette", "train", "--data", "digits", "--epochs", "2",
            "--name", "r", "--quiet"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    metrics = tmp_path / "runs" / "r" / "metrics.csv"
    deadline = time.time() + 120
    while not metrics.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("training finished before it could be interrupted (a very fast machine)")
    assert proc.returncode in (2, 130) and "Traceback" not in err, err
    rows_before = len(metrics.read_text().strip().splitlines()) - 1
    assert rows_before == 1 and "--resume" in err
    resnette("train", "--resume", "--name", "r", "--quiet", cwd=tmp_path)
    assert [line.split(",")[0] for line in metrics.read_text().strip().splitlines()[1:]] == \
        ["0", "1"]
