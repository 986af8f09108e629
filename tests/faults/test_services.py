"""Optional services never take training down or hang it: a tracking server that accepts
connections and never replies is found at start, by a real request with a 5 s timeout, in
one line before any folder is made; a logger (TensorBoard, MLflow) that fails mid-run is one
warning, and the run trains to its end with every file it would have written."""
import collections
import csv
import socket
import sys
import threading
import time
import types
import warnings
from pathlib import Path

import pytest

from conftest import EPOCHS, one_error_line, run, train_args
from fakes import FakeDataLoaders, tiny_net
from resnette.run.mlflow_log import Connection, MLflowLog, answers
from resnette.runfiles import Run
from resnette.train import Learner
from resnette.train.callbacks import Callback, TensorBoard
from resnette.utils import ResnetteError


class SilentServer:
    """Accepts every connection on 127.0.0.1 and never sends a byte; closes itself after
    `lifetime` seconds at the latest, so a test that goes wrong cannot leave it behind."""

    def __init__(self, lifetime: float = 60.0):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port, self.held, self.accepted = self.sock.getsockname()[1], [], 0
        self.stop_at = time.monotonic() + lifetime
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while time.monotonic() < self.stop_at:
            try:
                conn, _ = self.sock.accept()
            except OSError:   # the 0.2 s tick, or the socket closed by close()
                if self.sock.fileno() == -1:
                    break
                continue
            self.held.append(conn)   # held open, never answered
            self.accepted += 1
        for conn in self.held:
            conn.close()

    def close(self) -> None:
        self.stop_at = 0
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def silent():
    server = SilentServer()
    yield server
    server.close()


def test_a_server_that_accepts_and_never_replies_is_found_in_seconds(silent):
    t = time.monotonic()
    with pytest.raises(ResnetteError, match=r"does not answer \(no reply within 0.5 s\)") as e:
        answers(f"http://127.0.0.1:{silent.port}", timeout=0.5)
    assert time.monotonic() - t < 3 and silent.accepted == 1   # a real request was made
    assert "\n" not in str(e.value)


def test_train_with_a_silent_tracking_server_stops_before_training_in_one_line(world, silent, cwd):
    """Before: the run started and hung in MLflow's first request (2 minutes per try, 7 tries),
    saying nothing."""
    t = time.monotonic()
    proc = run(train_args(world["data"], "m", "--mlflow", f"http://127.0.0.1:{silent.port}"),
               cwd, world["home"], timeout=60)
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert f"MLflow server http://127.0.0.1:{silent.port} does not answer (no reply within 5 s)" \
        in line, line
    assert time.monotonic() - t < 40
    assert not (cwd / "runs").exists()


def test_the_tracking_uri_from_the_environment_is_checked_too(silent, monkeypatch):
    from resnette.run.mlflow_log import connect
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{silent.port}")
    with pytest.raises(ResnetteError, match="does not answer"):
        connect("default", timeout=0.5)


class Client:
    """An MLflow client that records what it is sent; from metrics batch number `fails` on
    it raises (the server went away), with `hangs` it blocks there instead until released."""

    def __init__(self, fails: int | None = None, hangs: bool = False):
        self.fails, self.hangs, self.release = fails, hangs, threading.Event()
        self.metrics, self.params, self.files, self.terminated = [], [], [], False

    def create_run(self, experiment_id, run_name, tags):
        return types.SimpleNamespace(info=types.SimpleNamespace(run_id="r1"))

    def log_batch(self, run_id, metrics=(), params=()):
        assert run_id == "r1"
        self.params += list(params)
        if metrics and self.fails is not None and len(self.metrics) >= self.fails:
            if self.hangs:
                self.release.wait(60)   # a server that takes the request and never answers
            raise ConnectionError("HTTPConnectionPool(host='mlflow', port=5000): Max retries "
                                  "exceeded\n(Caused by NewConnectionError)")
        if metrics:
            self.metrics.append(list(metrics))

    def log_artifact(self, run_id, path, folder):
        self.files.append(Path(path).name)

    def set_terminated(self, run_id):
        self.terminated = True


def logger(client, tmp_path, patience: float = 30.0) -> MLflowLog:
    return MLflowLog(Connection(client, "http://mlflow:5000", "0"), Run(tmp_path / "run"),
                     {"arch": "tiny", "lr": 0.01}, patience=patience)


def fit_with(cb: Callback, tmp_path, epochs: int = 3) -> tuple[Learner, list]:
    learn = Learner(FakeDataLoaders(n_train=32, n_valid=16), tiny_net(),
                    quiet=True, run_dir=tmp_path / "run", cbs=[cb])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learn.fit_one_cycle(epochs, 1e-2)
    return learn, [w for w in caught if issubclass(w.category, UserWarning)]


@pytest.fixture
def entities(monkeypatch):
    """MLflow's Param and Metric records: the package's own where it is installed, else two
    plain records of the same fields (the callback only builds them and hands them over)."""
    try:
        import mlflow.entities   # noqa: F401
    except ImportError:
        fake = types.ModuleType("mlflow.entities")
        fake.Param = collections.namedtuple("Param", "key value")
        fake.Metric = collections.namedtuple("Metric", "key value timestamp step")
        package = types.ModuleType("mlflow")
        package.entities = fake
        monkeypatch.setitem(sys.modules, "mlflow", package)
        monkeypatch.setitem(sys.modules, "mlflow.entities", fake)


def test_mlflow_gets_params_every_epoch_in_order_and_the_files(tmp_path, entities):
    """The background sender delivers everything, in order, before fit returns."""
    client = Client()
    learn, caught = fit_with(logger(client, tmp_path), tmp_path)
    assert caught == []
    assert {(p.key, p.value) for p in client.params} == {("arch", "tiny"), ("lr", "0.01")}
    assert [{m.step for m in batch} for batch in client.metrics] == [{0}, {1}, {2}]
    assert "metrics.csv" in client.files and client.terminated


def test_mlflow_failing_mid_run_is_one_warning_and_training_goes_on(tmp_path, entities):
    """Before: the ConnectionError of epoch 1's log_batch ended the run with a traceback."""
    client = Client(fails=1)   # epoch 0's metrics get through, epoch 1's fail
    cb = logger(client, tmp_path)
    learn, caught = fit_with(cb, tmp_path)
    assert len(caught) == 1, [str(w.message) for w in caught]
    text = str(caught[0].message)
    assert text.startswith("MLflow logging failed at ") and "(ConnectionError: " in text
    assert "\n" not in text and "training goes on without MLflow" in text
    assert len(learn.recorder.rows) == 3 and cb not in learn.cbs and not client.terminated
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1, 2]


def test_mlflow_that_stops_answering_mid_run_never_holds_up_training(tmp_path, entities):
    """Before: the epoch waited in MLflow's request (120 s, 7 tries) with no word said."""
    client = Client(fails=1, hangs=True)
    t = time.monotonic()
    try:
        learn, caught = fit_with(logger(client, tmp_path, patience=0.5), tmp_path)
    finally:
        client.release.set()
    assert time.monotonic() - t < 30 and len(learn.recorder.rows) == 3
    assert [str(w.message).split(" (")[0] for w in caught] == \
        ["MLflow logging failed at after_fit, epoch 2"]
    assert "TimeoutError: the server took nothing for 0.5 s" in str(caught[0].message)


def test_tensorboard_failing_mid_run_is_one_warning_and_training_goes_on(tmp_path):
    pytest.importorskip("tensorboard")
    cb = TensorBoard(tmp_path / "tb")

    class Full:   # the disk fills after the first epoch's scalars
        def __init__(self, writer):
            self.writer, self.flushed = writer, 0

        def add_scalar(self, *a):
            if self.flushed:
                raise OSError(28, "No space left on device")
            self.writer.add_scalar(*a)

        def flush(self):
            self.flushed += 1
            self.writer.flush()

        def close(self):
            self.writer.close()

    make = cb._writer_class
    cb._writer_class = lambda log_dir: Full(make(log_dir=log_dir))
    learn, caught = fit_with(cb, tmp_path)
    assert [str(w.message).split(" (")[0] for w in caught] == \
        ["TensorBoard logging failed at after_epoch, epoch 1"]
    assert "No space left on device" in str(caught[0].message)
    assert len(learn.recorder.rows) == 3


def test_a_logger_that_is_not_optional_still_stops_the_run(tmp_path):
    class Strict(Callback):
        def after_epoch(self, learn):
            raise RuntimeError("a callback of the user's: its failure is the user's to see")
    with pytest.raises(RuntimeError, match="the user's to see"):
        fit_with(Strict(), tmp_path, epochs=1)
