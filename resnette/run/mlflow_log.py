"""MLflow logging (`resnette train --mlflow [URI]`, `pip install resnette[mlflow]`).

One MLflow run per resnette run, named after its folder, in the experiment named by
$MLFLOW_EXPERIMENT_NAME (default "resnette"): the config's keys as params, each epoch's row
of metrics.csv as metrics at step = the epoch (from 0, as metrics.csv; epochs that were not
validated have no valid_loss/accuracy point), the lr at the epoch's end, and when training
ends the run folder's files as artifacts (config.toml, classes.json, metrics.csv, the
weights, evaluation.json; not checkpoint.pt, which holds the optimizer for --resume and is
twice the weights). The plots, drawn by `resnette report` after training returns, are not
in it. `<run>/mlflow.json` remembers the MLflow run, so `--resume` continues the same one.

The URI is MLflow's own (`http://server:5000`, `sqlite:///mlflow.db`, `file:///path/mlruns`);
a bare `--mlflow` uses $MLFLOW_TRACKING_URI, else MLflow's default. MLflow 3 refuses a file
store unless MLFLOW_ALLOW_FILE_STORE=true is set (its own rule, said in one line here).
Everything is checked by `connect`, before the run folder is created: a server must answer
a real request within 5 s. After that MLflow is an optional service: everything is sent from
a background thread (a server that stops answering holds up that thread, never an epoch),
the end of training waits for it only while it makes progress, and a failure is one warning
while training goes on.
"""
from __future__ import annotations

import dataclasses
import http.client
import json
import math
import os
import queue
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from resnette.run.folder import Run
from resnette.train.callbacks import Callback
from resnette.files import read_json, write_text
from resnette.utils import ResnetteError

DEFAULT = "default"         # the value of a bare `--mlflow`
SKIPPED = {"checkpoint.pt", "mlflow.json"}
EXPERIMENT = "resnette"


@dataclasses.dataclass
class Connection:
    client: Any
    uri: str | None
    experiment_id: str


def connect(uri: str, timeout: float = 5.0) -> Connection:
    """An MLflow client for `uri` and the experiment to log into, or one line saying why not
    (a server that does not answer within `timeout` seconds, no package, a store MLflow
    refuses)."""
    target = None if uri in ("", DEFAULT) else uri
    answers(target or os.environ.get("MLFLOW_TRACKING_URI"), timeout)
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise ResnetteError("--mlflow needs the mlflow package: pip install resnette[mlflow] "
                            "(or pip install mlflow-skinny)") from None
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
    try:
        client = MlflowClient(tracking_uri=target)
        found = client.get_experiment_by_name(name)
        experiment = found.experiment_id if found else client.create_experiment(name)
    except Exception as e:   # noqa: BLE001 - MlflowException, a driver missing, a network error
        text = str(e).strip()
        first = text.split(". ")[0].splitlines()[0] if text else type(e).__name__
        hint = ""
        if "MLFLOW_ALLOW_FILE_STORE" in str(e):
            hint = "; set MLFLOW_ALLOW_FILE_STORE=true to log to a folder, or use a server"
        elif "sqlite" in str(e):
            hint = ("; a sqlite store needs the full package (pip install mlflow), or give "
                    "--mlflow http://SERVER:5000")
        raise ResnetteError(f"MLflow cannot log to {target or 'its default store'}: {first}"
                            f"{hint}") from None
    return Connection(client, target, experiment)


def answers(uri: str | None, timeout: float = 5.0) -> None:
    """A tracking server must answer a real request (GET <uri>/health, MLflow's own health
    check) within `timeout` seconds, with any HTTP status (401 behind a login still answers).
    A server that is down fails here in seconds, not after MLflow's retries (it retries each
    request seven times with backoff: minutes), and one that accepts connections but never
    replies fails here instead of hanging the run's first request silently."""
    parts = urlsplit(uri or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    request = urllib.request.Request(uri.rstrip("/") + "/health", method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            reply.read(1024)
    except urllib.error.HTTPError:   # an HTTP answer, whatever its status
        return
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, ssl.SSLError):   # TLS spoke: MLflow's own settings decide
            return
        if isinstance(reason, (TimeoutError, socket.timeout)):
            why = f"no reply within {timeout:g} s"
        else:
            why = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        raise ResnetteError(f"MLflow server {uri} does not answer ({why}); start it or check "
                            "the address") from None


class Sender:
    """Jobs run one after another on a background thread, so training never waits for the
    server: a server that stops answering mid-run holds up this thread, never an epoch.
    The first job that fails stops the rest; `put` and `wait` then raise its error (the
    Learner turns it into one warning and stops calling the logger)."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.pending, self.done = 0, threading.Condition()
        self.error: Exception | None = None
        self.thread: threading.Thread | None = None

    def put(self, job: Callable[[], None]) -> None:
        if self.error is not None:
            raise self.error
        with self.done:
            self.pending += 1
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="resnette-mlflow", daemon=True)
            self.thread.start()
        self.jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                if self.error is None:
                    job()
            except Exception as e:   # noqa: BLE001 - reported by put/wait, in the main thread
                self.error = e
            finally:
                with self.done:
                    self.pending -= 1
                    self.done.notify_all()

    def wait(self, patience: float) -> None:
        """Until every job is done, as long as one finishes every `patience` seconds (many
        files may take long; a server that takes nothing for that long has stopped)."""
        with self.done:
            while self.pending:
                before = self.pending
                if not self.done.wait_for(lambda: self.pending < before, timeout=patience):
                    raise TimeoutError(f"the server took nothing for {patience:g} s; "
                                       f"{self.pending} request(s) not sent")
        if self.error is not None:
            raise self.error


class MLflowLog(Callback):
    """Logs a training run to MLflow (see the module docstring). `connection`: `connect(uri)`,
    made before the run folder exists so that a refusal costs nothing. Everything is sent by
    a `Sender` thread; the end of training waits for it, at most `patience` seconds without
    progress. A failure is one warning and training goes on (Callback.optional)."""

    optional, service = True, "MLflow"

    def __init__(self, connection: Connection, run: Run, config: Any,
                 patience: float = 120.0) -> None:
        self.conn, self.run, self.config, self.patience = connection, run, config, patience
        self.run_id: str | None = None
        self.sent: dict[Path, tuple[int, int]] = {}   # artifact -> (size, mtime) logged
        self.sender: Sender | None = None              # made by before_fit on the main rank

    @property
    def record(self) -> Path:
        return self.run.path / "mlflow.json"

    def before_fit(self, learn) -> None:
        if learn.is_main:
            self.sender = self.sender or Sender()
            self.sender.put(self._start)

    def _start(self) -> None:
        self.run_id = self._previous()
        client = self.conn.client
        if self.run_id is None:
            created = client.create_run(self.conn.experiment_id, run_name=self.run.name,
                                        tags={"resnette.run_folder": str(self.run.path.resolve())})
            self.run_id = created.info.run_id
            text = json.dumps({"tracking_uri": self.conn.uri, "run_id": self.run_id}, indent=1)
            write_text(self.record, text)
            self._params()
        else:
            client.update_run(self.run_id, status="RUNNING")

    def _previous(self) -> str | None:
        """The MLflow run this run folder logged to before (a --resume), if the same store."""
        try:
            saved = read_json(self.record, "MLflow record")
            if saved.get("tracking_uri") == self.conn.uri:
                self.conn.client.get_run(saved["run_id"])   # still there?
                return str(saved["run_id"])
        except Exception:   # noqa: BLE001 - absent, damaged or deleted: a new MLflow run
            pass
        return None

    def _params(self) -> None:
        from mlflow.entities import Param

        values = (dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config)
                  else dict(self.config))
        params = [Param(k, str(v)[:6000]) for k, v in sorted(values.items()) if v is not None]
        for i in range(0, len(params), 100):   # MLflow takes at most 100 params per batch
            self.conn.client.log_batch(self.run_id, params=params[i:i + 100])

    def after_epoch(self, learn) -> None:
        if self.sender is None:
            return
        from mlflow.entities import Metric

        row, stamp = learn.recorder.rows[-1], _now_ms()   # read now, sent when the thread can
        values = {k: v for k, v in row.items() if k != "epoch"}
        if learn.recorder.lrs:
            values["lr"] = learn.recorder.lrs[-1]
        metrics = [Metric(k, float(v), stamp, int(row["epoch"])) for k, v in values.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        self.sender.put(lambda: self.conn.client.log_batch(self.run_id, metrics=metrics))

    def after_fit(self, learn) -> None:
        if self.sender is None:
            return
        self.sender.put(self._send_files)
        self.sender.put(lambda: self.conn.client.set_terminated(self.run_id))
        self.sender.wait(self.patience)

    def log_files(self) -> None:
        """Send the run folder's new or changed files and wait for them: `resnette train`
        calls it once the evaluation is written, after the last epoch."""
        if self.sender is not None:
            self.sender.put(self._send_files)
            self.sender.wait(self.patience)

    def _send_files(self) -> None:
        """The run folder's files (not SKIPPED, not hidden) as the MLflow run's artifacts,
        those new or changed since the last call."""
        for path in sorted(self.run.path.rglob("*")):
            rel = path.relative_to(self.run.path)
            if (not path.is_file() or path.name in SKIPPED
                    or any(p.startswith(".") for p in rel.parts)):
                continue
            st = path.stat()
            if self.sent.get(path) == (st.st_size, st.st_mtime_ns):
                continue
            folder = rel.parent.as_posix()
            self.conn.client.log_artifact(self.run_id, str(path),
                                          None if folder == "." else folder)
            self.sent[path] = (st.st_size, st.st_mtime_ns)


def _now_ms() -> int:
    import time
    return int(time.time() * 1000)
