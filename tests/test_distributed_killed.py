"""A rank killed mid-job (as an OOM killer would): the survivor ends the job with one clear
line in bounded time, and `--resume` continues from the checkpoint (docs/DISTRIBUTED.md)."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from ddp_jobs import JOB_TIMEOUT, MNIST_TINY, finish, rank_pids, read_rows, torchrun, train_args


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """A 2-rank CLI run whose rank 1 is SIGKILLed (as an OOM killer would) after epoch 0."""
    if not MNIST_TINY.is_dir():
        pytest.skip("mnist_tiny not present")
    if not Path("/proc/self/environ").exists():
        pytest.skip("needs /proc to find the rank to kill")
    tmp = tmp_path_factory.mktemp("killed")
    run = tmp / "run"
    mark = str(tmp)
    job = torchrun(["-m", "resnette", *train_args(run, bs=32, epochs=6)], tmp, RESNETTE_TEST_MARK=mark)
    deadline = time.monotonic() + JOB_TIMEOUT
    while not (run / "metrics.csv").exists():
        if job.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"training did not reach epoch 1:\n{finish(job)[-3000:]}")
        time.sleep(0.02)
    os.kill(rank_pids(mark)[1], signal.SIGKILL)
    killed = time.perf_counter()
    out = finish(job)
    return {"run": run, "tmp": tmp, "out": out, "rc": job.returncode,
            "seconds": time.perf_counter() - killed, "rows": read_rows(run / "metrics.csv")}


def test_a_dead_rank_ends_the_job_with_a_clear_error(killed_run):
    out = killed_run["out"]
    assert killed_run["rc"] != 0, out[-3000:]
    assert killed_run["seconds"] < 30          # not a hang: the survivor noticed at once
    assert "error: rank 0 lost contact with another training process" in out
    assert "--resume" in out
    assert "Signal 9 (SIGKILL) received" in out           # torchrun names the dead rank
    assert 1 <= len(killed_run["rows"]) < 6


def test_a_resumed_ddp_run_continues_from_its_checkpoint(killed_run):
    run, before = killed_run["run"], killed_run["rows"]
    job = torchrun(["-m", "resnette", "train", "--resume", "--run-dir", str(run)], killed_run["tmp"])
    out = finish(job)
    assert job.returncode == 0, out[-3000:]
    rows = read_rows(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == [str(e) for e in range(6)]
    assert rows[:len(before)] == before    # the epochs before the crash were not redone
    assert float(rows[-1]["accuracy"]) > 0.95
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
