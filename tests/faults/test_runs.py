"""A command changes a run folder only when it will succeed, and one process writes it at a
time (real `python -m resnette` processes on the conftest's 68-image folder).

--overwrite with missing data, a batch larger than the data, --init-from the run being
replaced, a divergence or a kill before the new run's first checkpoint: the old run is back,
byte for byte. A refused --resume (another arch, other epochs, a size never trained at)
changes no byte. Two trainings of one run folder: the second is refused with the first's pid.
"""
import shutil
import signal
import subprocess

import pytest

from conftest import (digests, finish, metric_rows, n_rows, one_error_line, run, start,
                      train_args, wait_for)


def copy_of(baseline, cwd, name: str):
    """A finished run to work on (without the lock or temporary files of the background
    report that `train` starts on the baseline)."""
    dst = cwd / "runs" / name
    shutil.copytree(baseline["run"], dst, ignore=shutil.ignore_patterns(".lock", ".*.tmp"))
    return dst


def untouched(folder, before):
    assert digests(folder) == before, "the run folder changed"
    assert not list(folder.parent.glob(f".{folder.name}.replaced-*")), "a moved-aside run was left"


@pytest.mark.parametrize("case, extra, words", [
    ("missing data", ["--data", "no-such-folder/"], "no-such-folder"),
    ("batch too large", ["--bs", "500"], "only 48 training images for batch size 500"),
])
def test_a_refused_overwrite_leaves_the_old_run_byte_identical(world, baseline, cwd, case, extra, words):
    folder = copy_of(baseline, cwd, "ow")
    before = digests(folder)
    args = train_args(world["data"], "ow", "--overwrite")
    args[args.index("--data"):args.index("--data") + 2] = []
    proc = run(args + (extra if "--data" in extra else ["--data", str(world["data"]), *extra]),
               cwd, world["home"])
    assert proc.returncode == 2
    assert words in one_error_line(proc.stderr)
    untouched(folder, before)


def test_overwrite_can_start_from_the_run_it_replaces(world, baseline, cwd):
    folder = copy_of(baseline, cwd, "ow")
    proc = run(train_args(world["data"], "ow", "--overwrite", "--init-from", str(folder),
                          "--epochs", "1"), cwd, world["home"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert n_rows(folder) == 1    # the new run (1 epoch), started from the old one's weights
    assert float(metric_rows(folder)[1][3]) == 1.0   # accuracy 1 after one epoch: not from scratch
    assert not list(folder.parent.glob(".ow.replaced-*"))


def test_a_divergence_before_the_first_checkpoint_puts_the_old_run_back(world, baseline, cwd):
    folder = copy_of(baseline, cwd, "ow")
    before = digests(folder)
    proc = run(train_args(world["data"], "ow", "--overwrite"), cwd, world["home"], fault="nan_at=0:2")
    assert proc.returncode == 2
    assert "NaN" in one_error_line(proc.stderr)
    untouched(folder, before)


def test_a_kill_before_the_first_checkpoint_of_an_overwrite_is_repaired_by_the_next_command(
        world, baseline, cwd):
    folder = copy_of(baseline, cwd, "ow")
    before = digests(folder)
    proc = start(train_args(world["data"], "ow", "--overwrite"), cwd, world["home"], fault="step_sleep=0.5")
    wait_for(lambda: list(cwd.glob("runs/.ow.replaced-*")), proc)   # moved aside, training
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    assert not (folder / "checkpoint.pt").exists()
    again = run(train_args(world["data"], "ow"), cwd, world["home"])   # a plain rerun
    assert again.returncode == 2
    assert "restored" in again.stderr and "already exists" in one_error_line(again.stderr)
    untouched(folder, before)


@pytest.mark.parametrize("extra, words", [
    (["--arch", "resblock_cnn"], "it was trained with arch = 'simple_cnn', not 'resblock_cnn'"),
    (["--epochs", "4"], "it was trained with epochs = 3, not 4"),
    (["--size", "48", "--presize", "48"], "it was trained with size = 32, not 48"),
])
def test_a_refused_resume_changes_no_byte(world, baseline, cwd, extra, words):
    folder = copy_of(baseline, cwd, "r")
    before = digests(folder)
    proc = run(["train", "--resume", "--name", "r", "--quiet", *extra], cwd, world["home"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = one_error_line(proc.stderr)
    assert words in line and "--init-from" in line, line
    untouched(folder, before)


def test_two_trainings_of_one_run_folder_the_second_is_refused_with_the_first_pid(world, cwd):
    first = start(train_args(world["data"], "two"), cwd, world["home"], fault="step_sleep=1.5")
    lock = cwd / "runs" / "two" / ".lock"
    wait_for(lambda: lock.exists() and lock.read_text().strip(), first)
    for extra in ([], ["--overwrite"], ["--arch", "resblock_cnn", "--overwrite"]):
        second = run(train_args(world["data"], "two", *extra), cwd, world["home"])
        assert second.returncode == 2
        line = one_error_line(second.stderr)
        assert f"is in use by process {first.pid} (resnette train)" in line, line
    resumed = run(["train", "--resume", "--name", "two", "--quiet"], cwd, world["home"])
    assert f"in use by process {first.pid}" in one_error_line(resumed.stderr)
    rc, _, err = finish(first)
    assert rc == 0, err[-2000:]
    folder = cwd / "runs" / "two"
    assert 'arch = "simple_cnn"' in (folder / "config.toml").read_text()   # one writer's files
    assert n_rows(folder) == 3 and not lock.exists()


def test_a_run_killed_before_its_first_checkpoint_resumes_from_scratch(world, cwd):
    proc = start(train_args(world["data"], "stub"), cwd, world["home"], fault="step_sleep=0.5")
    folder = cwd / "runs" / "stub"
    wait_for(lambda: (folder / "config.toml").exists(), proc)
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    assert not (folder / "checkpoint.pt").exists()
    plain = run(train_args(world["data"], "stub"), cwd, world["home"])
    line = one_error_line(plain.stderr)
    assert "stopped before its first checkpoint" in line and "--resume" in line, line
    resumed = run(["train", "--resume", "--name", "stub", "--quiet"], cwd, world["home"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "no checkpoint yet" in resumed.stderr and n_rows(folder) == 3


def test_evaluate_needs_no_training_batches(world, baseline, cwd):
    """48 training images and evaluate's default batch size of 64: the valid split is what is
    measured, so the training split's batch check must not stop it."""
    folder = copy_of(baseline, cwd, "e")
    proc = run(["evaluate", str(folder), "--json"], cwd, world["home"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"n": 16' in proc.stdout


@pytest.fixture
def read_only(tmp_path, baseline):
    """A finished run on a tmpfs remounted read-only (chmod does not stop root)."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        shutil.copytree(baseline["run"], mnt / "run", ignore=shutil.ignore_patterns(".lock", ".*.tmp"))
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.parametrize("args, words", [
    (["report", "{ro}/run"], "cannot write to run folder {ro}/run (Read-only file system); report"),
    (["evaluate", "{ro}/run"], "cannot write to run folder {ro}/run (Read-only file system); evaluate"),
    (["export", "{ro}/run"], "cannot write to run folder {ro}/run (Read-only file system); pass --out"),
    (["export", "{ro}/run", "--out", "{ro}/m.onnx"], "cannot write {ro}/m.onnx (Read-only file system)"),
    (["train", "--resume", "--run-dir", "{ro}/run"], "cannot write to run folder {ro}/run (Read-only"),
    (["train", "--data", "digits", "--run-dir", "{ro}/new"], "cannot write to run folder {ro}/new (Read-only"),
    (["lr-find", "--data", "digits", "--out", "{ro}/lr.png"], "cannot write {ro}/lr.png (Read-only"),
])
def test_read_only_places_are_one_line(world, read_only, cwd, args, words):
    before = digests(read_only)
    proc = run([a.format(ro=read_only) for a in args], cwd, world["home"])
    assert proc.returncode == 2
    assert words.format(ro=read_only) in one_error_line(proc.stderr)
    assert digests(read_only) == before


def test_a_read_only_run_still_predicts(world, read_only, cwd):
    proc = run(["predict", str(read_only / "run"), str(world["data"] / "valid" / "a")], cwd, world["home"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout.strip().splitlines()) == 1 + 8   # the header, a line per image
