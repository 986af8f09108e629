"""torchrun --max-restarts (issue 10 #8): a restarted attempt (TORCHELASTIC_RESTART_COUNT > 0)
continues the run its killed predecessor started, as `--resume` would, and ends exactly where
the uninterrupted run ends; it never writes over another run's work."""
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import (LAUNCHER, TIMEOUT, digests, env, finish, metric_rows, n_rows,
                      one_error_line, run, start, train_args, wait_for)


def kill_after_first_epoch(args, cwd, home, folder):
    """Start the command, SIGKILL it during epoch 1 (epoch 0 is checkpointed)."""
    proc = start(args, cwd, home, fault="step_sleep=0.15")
    wait_for(lambda: n_rows(folder) == 1, proc)
    time.sleep(0.4)
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    assert n_rows(folder) == 1


def test_a_restart_continues_the_killed_attempt_and_ends_like_the_uninterrupted_run(world, baseline, cwd):
    args = train_args(world["data"], "e")
    folder = cwd / "runs" / "e"
    kill_after_first_epoch(args, cwd, world["home"], folder)
    again = run(args, cwd, world["home"], TORCHELASTIC_RESTART_COUNT="1")   # the same command line
    assert again.returncode == 0, again.stderr[-3000:]
    said = [line for line in again.stderr.splitlines() if line.startswith("elastic restart")]
    assert said == ["elastic restart 1: continuing runs/e (as with --resume)"]
    assert metric_rows(folder) == baseline["rows"]   # same losses and accuracy, to the digit


def test_a_default_named_run_is_continued_in_its_own_folder(world, baseline, cwd):
    args = train_args(world["data"], "unused")[:-2]   # no --name: runs/<data>-<arch>-<size>px
    assert "--name" not in args
    default = cwd / "runs" / "images-simple_cnn-32px"
    kill_after_first_epoch(args, cwd, world["home"], default)
    again = run(args, cwd, world["home"], TORCHELASTIC_RESTART_COUNT="2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "elastic restart 2: continuing runs/images-simple_cnn-32px" in again.stderr
    assert metric_rows(default) == baseline["rows"]
    assert sorted(p.name for p in (cwd / "runs").iterdir()) == ["images-simple_cnn-32px"]


def test_a_restart_never_writes_over_another_runs_work(world, baseline, cwd):
    other = cwd / "runs" / "other"
    shutil.copytree(baseline["run"], other)   # a finished run with --lr 0.01
    before = digests(other)
    # a chosen name holding a run trained differently: refused in one line, nothing touched
    refused = run(train_args(world["data"], "other", "--lr", "0.02"), cwd, world["home"],
                  TORCHELASTIC_RESTART_COUNT="1")
    assert refused.returncode == 2
    assert "it was trained with lr = 0.01, not 0.02" in one_error_line(refused.stderr)
    assert digests(other) == before
    # a default name whose newest folder is another run: that one is left alone, a new one starts
    default = cwd / "runs" / "images-simple_cnn-32px"
    shutil.copytree(baseline["run"], default)
    (default / "config.toml").write_text((default / "config.toml").read_text()
                                         .replace('name = "base"', 'name = "images-simple_cnn-32px"'))
    kept = digests(default)
    fresh = run([*train_args(world["data"], "x")[:-2], "--lr", "0.02"], cwd, world["home"],
                TORCHELASTIC_RESTART_COUNT="1")   # no --name: the default one
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert "elastic restart" not in fresh.stderr
    assert digests(default) == kept and n_rows(cwd / "runs" / "images-simple_cnn-32px-2") == 3


def test_a_real_torchrun_restart_after_a_crash(world, baseline, cwd):
    """torchrun --max-restarts=1: the first attempt dies at epoch 1, batch 2 (os._exit in the
    launcher's fault); torchrun starts the command again, which continues the run."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
           "--max-restarts=1", str(LAUNCHER), "crash_at=1:2", "--",
           *train_args(world["data"], "t")]
    clean = {k: v for k, v in env(world["home"]).items()
             if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RESTART_COUNT")}
    try:
        job = subprocess.run(cmd, cwd=cwd, env=clean, capture_output=True, text=True,
                             timeout=3 * TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("torchrun with a restart hung")
    assert job.returncode == 0, (job.stdout + job.stderr)[-4000:]
    assert "elastic restart 1: continuing runs/t (as with --resume)" in job.stderr
    rows = metric_rows(cwd / "runs" / "t")
    assert len(rows) == len(baseline["rows"]) and rows[0] == baseline["rows"][0]
    # one process under DDP runs the same arithmetic as without it
    assert rows == baseline["rows"]
