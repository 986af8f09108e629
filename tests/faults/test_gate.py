"""Issue 23's file-system bugs, each through the gate (resnette/files/) that fixes its class:
outputs over a run's files, --overwrite of a folder that is not a run, locks written through
links, FIFOs and /dev/zero where a lock or a cache file should be, relative cache sources, and
weights files of any bytes. Each test failed on 4bb7df4; hangs run as real processes under a
timeout, the rest in-process (resnette.cli.main) to stay fast.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from conftest import copy_run, digests, one_error_line, run, train_args
from resnette import cachedir, files
from resnette.cli import main
from resnette.data.cachefs import entry_lock
from resnette.utils import ResnetteError

VICTIM_TEXT = b"the user's file: nothing resnette does may change it\n"


@pytest.fixture
def victim(tmp_path_factory) -> Path:
    """A file outside every tree a command works in; a link points at it."""
    path = tmp_path_factory.mktemp("outside") / "victim.txt"
    path.write_bytes(VICTIM_TEXT)
    return path


def cli(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


# ------------------------------------------------------------------ outputs

@pytest.mark.parametrize("action,target", [("html", "config.toml"), ("plot", "model.safetensors"),
                                           ("plot", "metrics.csv"), ("html", ".resnette-run")])
def test_runs_plot_and_html_never_write_over_a_run_file(baseline, cwd, capsys, monkeypatch,
                                                       action, target):
    monkeypatch.chdir(cwd)
    r = copy_run(baseline["run"], cwd, "x")
    before = digests(r)
    rc, _, err = cli(["runs", action, str(r), "-o", str(r / target)], capsys)
    assert rc == 2 and "inside the run folder" in one_error_line(err)
    assert digests(r) == before


def test_an_output_is_never_a_fifo_a_folder_or_in_a_missing_folder(baseline, cwd, capsys,
                                                                  monkeypatch):
    monkeypatch.chdir(cwd)
    r = copy_run(baseline["run"], cwd, "x")
    os.mkfifo(cwd / "pipe.html")
    (cwd / "dir.html").mkdir()
    for out, words in (("pipe.html", "FIFO"), ("dir.html", "is a folder"),
                       ("typo/runs.html", "does not exist")):
        rc, _, err = cli(["runs", "html", str(r), "-o", out], capsys)
        assert rc == 2 and words in one_error_line(err), err
    assert not (cwd / "typo").exists()   # a typo in --out does not create a tree
    rc, out, _ = cli(["runs", "html", str(r), "-o", "fine.html"], capsys)
    assert rc == 0 and (cwd / "fine.html").stat().st_size > 0


# ------------------------------------------------------------------ what --overwrite deletes

def test_overwrite_never_deletes_a_folder_that_merely_holds_a_config_toml(world, cwd):
    project = cwd / "project"
    project.mkdir()
    for name, text in (("config.toml", "[tool]\nx = 1\n"), ("metrics.csv", "a,b\n1,2\n"),
                       ("notes.txt", "mine\n")):
        (project / name).write_text(text)
    before = digests(project)
    proc = run(train_args(world["data"], "unused", "--run-dir", str(project), "--overwrite"),
               cwd, world["home"])
    assert proc.returncode == 2 and "not a resnette run" in one_error_line(proc.stderr)
    assert digests(project) == before


def test_overwrite_of_the_current_folder_is_one_line(world, baseline, cwd):
    r = copy_run(baseline["run"], cwd, "x")
    before = digests(r)
    for where in (r, cwd):   # a run folder, and a folder that is no run
        proc = run(train_args(world["data"], "unused", "--run-dir", ".", "--overwrite"), where,
                   world["home"])
        assert proc.returncode == 2, proc.stderr[-2000:]
        one_error_line(proc.stderr)
    assert digests(r) == before


def test_a_new_run_holds_the_marker_and_remove_owned_needs_it(baseline, tmp_path, victim):
    assert files.is_run_folder(baseline["run"]) and (baseline["run"] / files.RUN_MARKER).is_file()
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.toml").write_text("x = 1\n")
    with pytest.raises(ResnetteError, match="not made by resnette"):
        files.remove_owned(plain)
    link = tmp_path / "link"
    link.symlink_to(victim.parent, target_is_directory=True)
    assert files.remove_owned(link) == f"the link {link}"
    assert victim.read_bytes() == VICTIM_TEXT and not link.exists()


# ------------------------------------------------------------------ locks through links

def test_a_lock_link_in_a_run_never_writes_its_target(world, baseline, cwd, victim):
    r = copy_run(baseline["run"], cwd, "x")
    (r / ".lock").symlink_to(victim)
    proc = run(["train", "--resume", "--run-dir", str(r), "--quiet"], cwd, world["home"])
    assert proc.returncode == 2 and "symbolic link" in one_error_line(proc.stderr)
    assert victim.read_bytes() == VICTIM_TEXT


def test_a_cache_lock_link_never_writes_its_target(tmp_path, victim):
    base = tmp_path / "decoded"
    base.mkdir()
    (base / f"{'a' * 20}.lock").symlink_to(victim)
    with pytest.raises(ResnetteError, match="symbolic link"):
        with entry_lock(base / f"{'a' * 20}.lock", base / ("a" * 20)):
            pass
    assert victim.read_bytes() == VICTIM_TEXT


def _entry(base: Path, key: str, root: str) -> Path:
    path = base / key
    path.mkdir(parents=True)
    (path / "meta.json").write_text(json.dumps({"root": root, "n": 1, "presize": 32, "bad": []}))
    (path / "images.npy").write_bytes(b"\x93NUMPY")
    return path


def test_cache_clear_never_creates_a_missing_link_target(tmp_path):
    base = tmp_path / "decoded"
    _entry(base, "b" * 20, str(tmp_path / "gone"))
    target = tmp_path / "outside" / "created-by-resnette"
    (tmp_path / "outside").mkdir()
    (base / f"{'b' * 20}.lock").symlink_to(target)
    (base / f"{'b' * 20}.use").symlink_to(target)
    with pytest.raises(ResnetteError):
        cachedir.clear(base, everything=True)
    assert not target.exists() and not os.path.lexists(target)


# ------------------------------------------------------------------ FIFOs and /dev/zero: no hang

def _runs_listing(cwd: Path, home: Path) -> subprocess.CompletedProcess:
    return run(["runs", "runs"], cwd, home, timeout=60)


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_fifo_or_dev_zero_lock_never_hangs_the_runs_listing(world, baseline, cwd, kind):
    r = copy_run(baseline["run"], cwd, "x")
    lock = r / ".lock"
    lock.unlink(missing_ok=True)
    os.mkfifo(lock) if kind == "fifo" else lock.symlink_to("/dev/zero")
    proc = _runs_listing(cwd, world["home"])   # a hang fails by timeout
    assert proc.returncode == 0 and "x" in proc.stdout, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_a_fifo_in_the_cache_never_hangs_resnette_cache(world, cwd, tmp_path):
    home = tmp_path / "home"
    base = home / "decoded"
    entry = _entry(base, "c" * 20, str(world["data"]))
    (entry / "meta.json").unlink()
    os.mkfifo(entry / "meta.json")
    os.mkfifo(base / f"{'c' * 20}.use")
    os.mkfifo(base / f"{'c' * 20}.lock")
    for args in (["cache"], ["cache", "--json"], ["cache", "clear", "--missing-source"]):
        proc = run(args, cwd, home, timeout=60)
        assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr, proc.stderr[-2000:]


# ------------------------------------------------------------------ cache sources

def test_relative_cache_sources_are_never_called_missing(tmp_path, monkeypatch):
    base = tmp_path / "decoded"
    (tmp_path / "project" / "images").mkdir(parents=True)
    _entry(base, "d" * 20, "images")   # as an older version recorded it, from tmp/project
    monkeypatch.chdir(tmp_path)        # another folder: "images" is not here
    removed, _ = cachedir.clear(base, missing_source=True)
    assert removed == [] and (base / ("d" * 20)).is_dir()


def test_a_new_cache_entry_records_its_source_absolute(tmp_path, monkeypatch):
    from resnette.data.cache import decoded_store
    from PIL import Image

    (tmp_path / "imgs" / "a").mkdir(parents=True)
    Image.new("RGB", (40, 40), (10, 20, 30)).save(tmp_path / "imgs" / "a" / "0.png")
    monkeypatch.chdir(tmp_path)
    store = decoded_store(Path("imgs"), [Path("imgs/a/0.png")], 32, cache_dir=tmp_path / "c",
                          workers=1)
    meta = files.read_json(store.path / "meta.json", "meta")
    assert meta["root"] == str(tmp_path / "imgs")
    assert files.is_entry(store.path) and (store.path / files.ENTRY_MARKER).is_file()


# ------------------------------------------------------------------ weights of any bytes

def test_a_non_zip_pth_and_a_damaged_checkpoint_are_one_line(baseline, cwd, capsys, monkeypatch):
    from resnette.models.interop import read_state_dict
    from resnette.train.checkpoints import load_checkpoint

    (cwd / "w.pth").write_bytes(b"this is not a zip at all" * 10)
    with pytest.raises(ResnetteError, match="w.pth"):
        read_state_dict(cwd / "w.pth")
    damaged = cwd / "checkpoint.pt"   # a zip without torch's records: KeyError in torch.load
    with zipfile.ZipFile(damaged, "w") as z:
        z.writestr("archive/nothing", b"x")
    with pytest.raises(ResnetteError, match="checkpoint"):
        load_checkpoint(damaged)
    r = copy_run(baseline["run"], cwd, "x")
    shutil.copy(damaged, r / "checkpoint.pt")
    monkeypatch.chdir(cwd)
    rc, _, err = cli(["train", "--resume", "--run-dir", str(r), "--quiet"], capsys)
    assert rc == 2 and "checkpoint" in one_error_line(err)


def test_a_config_records_its_paths_absolute(tmp_path, monkeypatch):
    from resnette.run.config import TrainConfig, save_config
    from resnette.run.reading import read_config

    (tmp_path / "imgs").mkdir()
    monkeypatch.chdir(tmp_path)
    save_config(TrainConfig(data="imgs", init_from="imgs", data_dir="imgs"), tmp_path / "c.toml")
    saved = read_config(tmp_path / "c.toml")
    assert saved.data == saved.init_from == saved.data_dir == str(tmp_path / "imgs")
    save_config(TrainConfig(data="digits"), tmp_path / "d.toml")   # a name stays a name
    assert read_config(tmp_path / "d.toml").data == "digits"


def test_predict_samples_replace_a_link_never_write_through_it(tmp_path, victim):
    from resnette.data.digits import save_samples

    names = [p.name for p in save_samples(tmp_path / "first")]
    (tmp_path / "second").mkdir()
    (tmp_path / "second" / names[0]).symlink_to(victim)
    written = save_samples(tmp_path / "second")
    assert victim.read_bytes() == VICTIM_TEXT and not written[0].is_symlink()


def test_a_run_folder_link_out_of_it_is_never_written_through(baseline, cwd, capsys, monkeypatch,
                                                              victim):
    monkeypatch.chdir(cwd)
    r = copy_run(baseline["run"], cwd, "x")
    shutil.rmtree(r / "plots")
    (r / "plots").symlink_to(victim.parent, target_is_directory=True)
    before = sorted(p.name for p in victim.parent.iterdir())
    rc, _, err = cli(["report", str(r)], capsys)
    assert rc == 2 and "link out of the run folder" in one_error_line(err)
    assert sorted(p.name for p in victim.parent.iterdir()) == before
    assert victim.read_bytes() == VICTIM_TEXT


def test_evaluate_with_its_plots_folder_a_fifo_changes_nothing(baseline, cwd, capsys, monkeypatch):
    """Found by test_fuzz_fs (long profile): evaluation.json was written, then the plots failed."""
    monkeypatch.chdir(cwd)
    r = copy_run(baseline["run"], cwd, "x")
    shutil.rmtree(r / "plots")
    os.mkfifo(r / "plots")
    (r / ".lock").unlink(missing_ok=True)   # a copy of the lock the background report held
    before = digests(r)
    rc, _, err = cli(["evaluate", str(r)], capsys)
    assert rc == 2 and "plots is not a folder" in one_error_line(err)
    assert digests(r) == before


def test_report_with_its_page_a_fifo_changes_nothing(baseline, cwd, capsys, monkeypatch):
    """Found by test_fuzz_fs (long profile): the plots were redrawn, then the page refused."""
    monkeypatch.chdir(cwd)
    r = copy_run(baseline["run"], cwd, "x")
    (r / "report.html").unlink(missing_ok=True)
    os.mkfifo(r / "report.html")
    (r / ".lock").unlink(missing_ok=True)   # a copy of the lock the background report held
    before = {p.name: p.stat().st_mtime_ns for p in (r / "plots").iterdir()}
    rc, _, err = cli(["report", str(r)], capsys)
    assert {p.name: p.stat().st_mtime_ns for p in (r / "plots").iterdir()} == before
    assert rc == 2 and "report.html is not a regular file (a FIFO)" in one_error_line(err)
