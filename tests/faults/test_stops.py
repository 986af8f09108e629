"""A NaN loss, running out of memory and Ctrl-C: each stops the process with a one-line
explanation, a non-zero exit code and no traceback, and leaves a checkpoint to resume from."""
import math
import signal
import time

import pytest
import torch

from conftest import (finish, metric_rows, n_rows, one_error_line, position, run, start,
                      train_args, wait_for)
from resnette.train.checkpoints import load_checkpoint


@pytest.fixture(scope="session")
def nan_run(world, tmp_path_factory):
    """A run whose loss turns NaN at epoch 1, batch 2 (also the source for the disk tests)."""
    cwd = tmp_path_factory.mktemp("nan")
    proc = run(train_args(world["data"], "n"), cwd, world["home"], fault="nan_at=1:2")
    return cwd, cwd / "runs" / "n", proc


def test_nan_loss_keeps_the_last_good_checkpoint(nan_run):
    _, folder, proc = nan_run
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "NaN" in line and "epoch 1, batch 2" in line and "lr=" in line and "checkpoint.pt is kept" in line
    state = load_checkpoint(folder / "checkpoint.pt")
    assert state["position"] == {"epoch": 1, "batch": 0}
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    from resnette.run.trained import read_weights
    weights, _ = read_weights(folder / "model.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert n_rows(folder) == 1 and all(math.isfinite(float(c)) for c in metric_rows(folder)[1][1:])


def test_out_of_memory_saves_the_batch_position_suggests_a_smaller_batch_and_resumes(world, baseline, cwd):
    proc = run(train_args(world["data"], "o"), cwd, world["home"], fault="oom_at=1:2")
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "out of memory at epoch 1, batch 2 with batch size 8" in line and "--bs 4" in line
    assert "--resume" in line
    assert position(cwd / "runs" / "o" / "checkpoint.pt") == {"epoch": 1, "batch": 2}
    done = run(["train", "--resume", "--name", "o", "--quiet"], cwd, world["home"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert metric_rows(cwd / "runs" / "o") == baseline["rows"]


def test_ctrl_c_mid_epoch_saves_where_it_stopped(world, cwd):
    # (resuming a mid-epoch checkpoint to the uninterrupted run's numbers is proven by the
    # out-of-memory test above; the Learner's own tests do it for SIGINT in one process)
    proc = start(train_args(world["data"], "c"), cwd, world["home"], fault="step_sleep=0.15")
    folder = cwd / "runs" / "c"
    wait_for(lambda: n_rows(folder) == 1, proc)
    time.sleep(0.4)
    proc.send_signal(signal.SIGINT)
    rc, _, err = finish(proc)
    assert rc == 2
    line = one_error_line(err)
    assert "SIGINT: stopped at epoch 1, batch" in line and "--resume" in line
    pos = position(folder / "checkpoint.pt")
    assert pos["epoch"] == 1 and 0 < pos["batch"] < 6   # mid-epoch, not the epoch start
    assert f"batch {pos['batch']};" in line and n_rows(folder) == 1
