"""Running a 2-rank torchrun job from a test: the launcher, its environment, a timeout that
kills every rank (a hang fails the test instead of blocking CI), and the CLI on mnist_tiny.
Used by test_distributed.py and test_distributed_killed.py."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

MNIST_TINY = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist_tiny"
JOB_TIMEOUT = 150  # seconds: a job that takes longer has hung; fail instead of blocking CI


# ---- helpers -------------------------------------------------------------------------------
def child_env(tmp: Path, **extra: str) -> dict:
    """One thread per rank (two ranks on two cores must not fight), a private cache."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", RESNETTE_HOME=str(tmp / "home"), PYTHONUNBUFFERED="1", **extra)
    return env


def torchrun(args: list[str], tmp: Path, **extra: str) -> subprocess.Popen:
    """`torchrun --standalone --nproc-per-node=2 ARGS` (standalone: rendezvous on a free local port)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "--max-restarts=0", *args]
    extra.setdefault("RESNETTE_TEST_MARK", f"{tmp}:{time.monotonic_ns()}")
    job = subprocess.Popen(cmd, env=child_env(tmp, **extra), cwd=tmp, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    job.mark = extra["RESNETTE_TEST_MARK"]   # finish() finds the ranks by it
    return job


def finish(job: subprocess.Popen, timeout: float = JOB_TIMEOUT) -> str:
    try:
        out, _ = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)   # the launcher and every rank it started
        for pid in rank_pids(job.mark).values():   # ranks in sessions of their own, whose
            try:                                    # open stdout would block communicate()
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out, _ = job.communicate()
        pytest.fail(f"the job hung for {timeout} s:\n{out[-3000:]}")
    return out


def read_rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def train_args(run_dir: Path, bs: int, epochs: int = 1) -> list[str]:
    """The CLI on mnist_tiny (3s and 7s): the chapter's simple_cnn learns it in one epoch."""
    return ["train", "--data", str(MNIST_TINY), "--arch", "simple_cnn", "--size", "32",
            "--presize", "32", "--bs", str(bs), "--epochs", str(epochs), "--lr", "1e-2",
            "--no-augment", "--device", "cpu", "--run-dir", str(run_dir), "--quiet"]


needs_mnist = pytest.mark.skipif(not MNIST_TINY.is_dir(), reason="mnist_tiny not present")


def rank_pids(mark: str) -> dict[int, int]:
    """pid of each rank whose environment carries `mark` (read from /proc)."""
    pids = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RESNETTE_TEST_MARK={mark}".encode() in env:
            for e in env:
                if e.startswith(b"RANK="):
                    pids[int(e[5:])] = int(d.name)
    return pids
