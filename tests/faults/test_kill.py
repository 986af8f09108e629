"""`kill -9` mid-epoch and mid-save: the checkpoint on disk is always whole, and --resume ends
exactly where a run that was never interrupted ends."""
import signal
import time

from conftest import (digests, finish, metric_rows, n_rows, position, run, start,
                      train_args, wait_for)


def test_kill9_mid_epoch_then_resume_ends_like_the_uninterrupted_run(world, baseline, cwd):
    proc = start(train_args(world["data"], "k"), cwd, world["home"], fault="step_sleep=0.15")
    ckpt = cwd / "runs" / "k" / "checkpoint.pt"
    wait_for(lambda: n_rows(ckpt.parent) == 1, proc)   # epoch 0 saved; epoch 1 under way
    time.sleep(0.4)
    proc.send_signal(signal.SIGKILL)
    rc, _, _ = finish(proc)
    assert rc == -signal.SIGKILL
    assert position(ckpt) == {"epoch": 1, "batch": 0}   # the last complete checkpoint
    done = run(["train", "--resume", "--name", "k", "--quiet"], cwd, world["home"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert metric_rows(ckpt.parent) == baseline["rows"]   # same losses and accuracy, to the digit


def test_kill9_during_the_checkpoint_save_keeps_the_previous_checkpoint_whole(world, cwd):
    # save_sleep pauses between writing checkpoint.pt's temporary file and renaming it
    proc = start(train_args(world["data"], "s"), cwd, world["home"], fault="save_sleep=1.5")
    folder = cwd / "runs" / "s"
    ckpt = folder / "checkpoint.pt"
    wait_for(lambda: n_rows(folder) == 1, proc)
    before = digests(folder)["checkpoint.pt"]
    wait_for(lambda: any(folder.glob(".checkpoint.pt.*.tmp")), proc)   # epoch 1's save started
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    assert digests(folder)["checkpoint.pt"] == before   # not a byte changed
    assert position(ckpt) == {"epoch": 1, "batch": 0}   # and it loads
    leftovers = list(folder.glob(".checkpoint.pt.*.tmp"))
    assert len(leftovers) == 1
    from resnette.run.setup import prepare
    prepare(folder, resume=True)   # what --resume does first: the leftover goes
    assert not list(folder.glob(".*.tmp")) and position(ckpt) == {"epoch": 1, "batch": 0}
