"""`resnette train --mlflow [URI]` (issue 19 #6): read back with MLflow's own client from a
local file store, the MLflow run holds the config as params, metrics.csv's rows as metric
histories and the run folder's files as artifacts; without the package, one line and no run
folder. The MLflow tests skip without mlflow (`pip install resnette[mlflow]`)."""
from __future__ import annotations

import csv
import sys

import pytest

from fakes import image_folder
from resnette.cli import build_parser, main
from resnette.run.tomlfile import read_toml
from resnette.utils import ResnetteError


def train_args(data, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--arch", "simple_cnn", "--size", "32", "--presize",
            "32", "--bs", "6", "--epochs", "2", "--device", "cpu", "--quiet", "--name", "ml",
            *extra]


def test_the_flag_takes_an_optional_uri():
    parser = build_parser("train")
    assert parser.parse_args(["train", "--mlflow"]).mlflow == "default"
    assert parser.parse_args(["train", "--mlflow", "file:///tmp/x"]).mlflow == "file:///tmp/x"
    assert not hasattr(parser.parse_args(["train"]), "mlflow")   # the config file's, if any


def test_without_the_package_one_line_and_no_run_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "mlflow", None)   # what `import mlflow` meets without it
    data = image_folder(tmp_path / "images", 6, 2, ("dark", "light"), size=32)
    assert main(train_args(data, "--mlflow", (tmp_path / "store").as_uri())) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --mlflow needs the mlflow package: pip install resnette[mlflow] "
                   "(or pip install mlflow-skinny)"]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "store").exists()


def test_a_store_mlflow_refuses_is_one_line_before_the_run(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    from resnette.run.mlflow_log import connect
    if int(mlflow.__version__.split(".")[0]) < 3:
        pytest.skip("MLflow 2 accepts a file store without MLFLOW_ALLOW_FILE_STORE")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(ResnetteError, match="set MLFLOW_ALLOW_FILE_STORE=true") as e:
        connect((tmp_path / "store").as_uri())
    assert "\n" not in str(e.value)


def test_a_server_that_does_not_answer_fails_in_seconds_not_minutes():
    pytest.importorskip("mlflow")
    import socket
    import time

    from resnette.run.mlflow_log import connect
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ResnetteError, match=f"MLflow server http://127.0.0.1:{port} does not "
                       "answer"):
        connect(f"http://127.0.0.1:{port}")
    assert time.monotonic() - start < 10   # MLflow's own retries take minutes


@pytest.mark.slow   # trains (two epochs of a tiny net) and imports MLflow: ~20 s here
def test_the_mlflow_run_holds_params_metrics_and_files(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")   # MLflow 3's rule for a folder
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    uri = (tmp_path / "mlruns").as_uri()
    data = image_folder(tmp_path / "images", 12, 4, ("dark", "light"), size=32, levels=(60, 190))
    assert main(train_args(data, "--mlflow", uri)) == 0
    run_dir = tmp_path / "runs" / "ml"
    client = MlflowClient(tracking_uri=uri)
    (found,) = client.search_runs([client.get_experiment_by_name("resnette").experiment_id])
    run_id = found.info.run_id
    assert found.info.run_name == "ml" and found.info.status == "FINISHED"
    config = read_toml(run_dir / "config.toml")
    params = found.data.params
    for key in ("arch", "size", "epochs", "lr", "bs", "data", "seed"):
        assert params[key] == str(config[key]), key
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for column in ("train_loss", "valid_loss", "accuracy", "time"):
        history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, column))
        assert history == [(int(r["epoch"]), float(r[column])) for r in rows], column
    assert [m.step for m in client.get_metric_history(run_id, "lr")] == [0, 1]
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.toml", "classes.json", "metrics.csv", "model.safetensors",
            "evaluation.json"} <= names
    assert "checkpoint.pt" not in names and ".lock" not in names
    logged = client.download_artifacts(run_id, "metrics.csv", str(tmp_path))
    assert open(logged).read() == (run_dir / "metrics.csv").read_text()
    # --resume logs into the same MLflow run (run/mlflow.json remembers it), not a new one
    assert main(train_args(data, "--mlflow", uri, "--resume")) == 0
    (again,) = client.search_runs([client.get_experiment_by_name("resnette").experiment_id])
    assert again.info.run_id == run_id and again.info.status == "FINISHED"
