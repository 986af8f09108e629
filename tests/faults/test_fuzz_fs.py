"""The hostile-filesystem fuzzer (issue 23): every command of the CLI, every file it touches,
replaced by what a hostile or broken file system holds.

The commands come from the parser itself (resnette/cli.py `build_parser`): a command with no
entry in TABLE fails `test_every_command_has_an_entry`, so a new command is covered the day
it is added. Each entry says how to run the command on a sandbox (a copy of a tiny trained run,
its decode cache under a private RESNETTE_HOME, a config file, an output path) and which files
it reads or writes there. One example picks a command, one of its files and one replacement:
a FIFO, a link to a victim file outside every tree or to its folder, a link to /dev/zero, a
folder, random bytes, an empty file, a huge sparse file. Then, for every example:
- the command finishes within TIMEOUT (it runs in a child, fuzz_child.py, killed after it);
- exit 0, or exit 2 with one `error:` line; no traceback;
- the victim file is unchanged, and nothing outside the run folder, RESNETTE_HOME and the
  named output changed (sizes, times and hashes before and after);
- no run file changed unless the command exists to change it (a refusal changes nothing).
Profiles (test_fuzz.py): `ci` a few examples per command, derandomized; HYPOTHESIS_PROFILE=long.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import event, given, settings, strategies as st

import fuzz_child
import test_fuzz  # noqa: F401  (registers and loads the Hypothesis profiles)
from test_fuzz_runs import tiny  # noqa: F401  (the session's tiny trained run)

pytestmark = pytest.mark.slow
TIMEOUT = 60
HUGE = 2**31   # a sparse file: no disk used, but reading it whole would take 2 GiB
KINDS = ("fifo", "victim-link", "dir-link", "dev-zero", "folder", "random", "empty", "huge")


@dataclass(frozen=True)
class Entry:
    """How to run one command on a sandbox, and what it touches there.

    `args(box)` gives the argv; `touches` the files it reads or writes, relative to the sandbox
    (run/..., home/decoded/..., c.toml, out...); `may_change` the run files it exists to write
    (None: any, as `train --resume`); `why`: where a command touches no file, why not."""
    args: Callable[["Box"], list[str]] | None
    touches: tuple[str, ...] = ()
    may_change: tuple[str, ...] | None = ()
    why: str = ""


RUN = ("run/config.toml", "run/classes.json", "run/metrics.csv", "run/model.safetensors",
       "run/.lock", "run/.resnette-run", "run/plots")
CACHE = ("home/decoded/KEY/meta.json", "home/decoded/KEY/images.npy", "home/decoded/KEY.lock",
         "home/decoded/KEY.use")
TRAIN = ["--arch", "simple_cnn", "--size", "32", "--presize", "32", "--bs", "4", "--epochs", "1",
         "--device", "cpu", "--precision", "fp32", "--quiet"]

TABLE: dict[str, list[Entry]] = {
    "train": [Entry(lambda b: ["train", "--resume", "--run-dir", str(b.run), "--quiet"],
                    RUN + ("run/checkpoint.pt", "run/best.safetensors"), None)],
    "lr-find": [Entry(lambda b: ["lr-find", "--data", str(b.data), *TRAIN, "--config",
                                 str(b.top / "c.toml"), "--out", str(b.top / "out.png")],
                      ("c.toml", "out.png") + CACHE)],
    "evaluate": [Entry(lambda b: ["evaluate", str(b.run), "--json"],
                       RUN + ("run/evaluation.json",) + CACHE, ("evaluation.json", "plots/"))],
    "predict": [Entry(lambda b: ["predict", str(b.run), str(b.data / "valid" / "a"), "--json"],
                      RUN)],
    "export": [Entry(lambda b: ["export", str(b.run), "--format", "timm", "--out",
                                str(b.top / "out.safetensors")],
                     RUN + ("out.safetensors",))],
    "summary": [Entry(lambda b: ["summary", "simple_cnn", "--size", "32"], (),
                      why="builds a model in memory: reads no file")],
    "reproduce": [Entry(lambda b: ["reproduce", "chapter14", "--quick", "--data",
                                   str(b.top / "no-data"), "--out", str(b.top / "out")], ("out",))],
    "bench": [Entry(None, why="synthetic images in memory: opens no file (and takes minutes)")],
    "recipes": [Entry(lambda b: ["recipes", "fast"], (), why="reads the package's own recipes")],
    "report": [Entry(lambda b: ["report", str(b.run)],
                     RUN + ("run/evaluation.json", "run/report.html"), ("report.html", "plots/"))],
    "runs": [Entry(lambda b: ["runs", str(b.top / "runs")], RUN),
             Entry(lambda b: ["runs", "--json", str(b.run)], RUN + ("run/checkpoint.pt",)),
             Entry(lambda b: ["runs", "html", str(b.run), "-o", str(b.top / "out.html")],
                   RUN + ("out.html",)),
             Entry(lambda b: ["runs", "plot", str(b.run), "-o", str(b.top / "out.png")],
                   RUN + ("out.png",))],
    "cache": [Entry(lambda b: ["cache", "--json"], CACHE),
              Entry(lambda b: ["cache", "clear", "--missing-source"], CACHE)],
}


def commands() -> list[str]:
    """The CLI's commands, as its parser knows them."""
    from resnette.cli import build_parser

    parser = build_parser("")
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sorted(sub.choices)


def test_every_command_has_an_entry():
    names = commands()
    assert len(names) >= 12 and not set(names) - set(TABLE), set(names) - set(TABLE)
    for name in names:
        for e in TABLE[name]:
            assert e.args is not None or e.why, f"{name}: give its args or say why it is not run"


# ------------------------------------------------------------------ the sandbox

class Box:
    """A cwd with a copy of the tiny run as runs/r (`run`), its decode cache under home/, a
    config file, and a victim file outside it all."""

    def __init__(self, tiny: dict[str, Path]) -> None:
        parent = tiny["run"].parent.parent
        self.top = Path(tempfile.mkdtemp(prefix="fs-", dir=parent))
        self.run = self.top / "runs" / "r"
        shutil.copytree(tiny["run"], self.run, ignore=shutil.ignore_patterns(".lock", ".*.tmp"))
        self.home = self.top / "home"
        shutil.copytree(tiny["home"] / "decoded", self.home / "decoded",
                        ignore=shutil.ignore_patterns("*.tmp"))
        (self.top / "c.toml").write_text("epochs = 1\n")
        self.data = tiny["data"]
        self.outside = Path(tempfile.mkdtemp(prefix="victim-", dir=parent))
        self.victim = self.outside / "victim.txt"
        self.victim.write_bytes(b"the user's own file\n")
        self.log = self.outside.with_suffix(".log")   # the command's output, beside it
        keys = [p.name for p in (self.home / "decoded").iterdir() if p.is_dir()]
        self.key = keys[0] if keys else "0" * 20

    def path(self, touched: str) -> Path:
        """A name of TABLE's (run/..., home/..., c.toml, out...) as a path in the sandbox."""
        touched = touched.replace("KEY", self.key)
        return self.run / touched[4:] if touched.startswith("run/") else self.top / touched

    def hostile(self, touched: str, kind: str, seed: bytes) -> None:
        p = self.path(touched)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif os.path.lexists(p):
            p.unlink()
        p.parent.mkdir(parents=True, exist_ok=True)
        if kind == "fifo":
            os.mkfifo(p)
        elif kind == "victim-link":
            p.symlink_to(self.victim)
        elif kind == "dir-link":   # a folder out of every tree: nothing may be written there
            p.symlink_to(self.outside, target_is_directory=True)
        elif kind == "dev-zero":
            p.symlink_to("/dev/zero")
        elif kind == "folder":
            p.mkdir()
        elif kind == "huge":
            with open(p, "wb") as f:
                f.truncate(HUGE)
        else:
            p.write_bytes(seed if kind == "random" else b"")

    def close(self) -> None:
        shutil.rmtree(self.top, ignore_errors=True)
        shutil.rmtree(self.outside, ignore_errors=True)
        self.log.unlink(missing_ok=True)


def snapshot(folder: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """What is under `folder` (but `skip`), without reading a FIFO or a huge file: links by
    target, FIFOs by kind, files by size, time and (up to 16 MiB) hash."""
    out: dict[str, str] = {}
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            p = Path(root) / name
            if any(p == s or s in p.parents for s in skip) or name == ".lock":
                continue
            st_ = os.lstat(p)
            key = str(p.relative_to(folder))
            if stat.S_ISLNK(st_.st_mode):
                out[key] = "-> " + os.readlink(p)
            elif stat.S_ISREG(st_.st_mode):
                digest = ""
                if st_.st_size <= 16 * 2**20:
                    digest = hashlib.sha256(p.read_bytes()).hexdigest()
                out[key] = f"{st_.st_size} {st_.st_mtime_ns} {digest}"
            else:
                out[key] = stat.filemode(st_.st_mode)[0]
    return out


# a clean process to fork from (fuzz_child.py says why); torch and resnette imported there once
_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(["torch", "resnette.cli", "fuzz_child"])


def resnette(box: Box, argv: list[str]) -> tuple[int, str]:
    """Run `resnette ARGV` in a child forked from the clean server, under TIMEOUT."""
    log = str(box.log)
    proc = _FORKS.Process(
        target=fuzz_child.child, args=(argv, str(box.top), str(box.home), log))
    proc.start()
    proc.join(TIMEOUT)
    if proc.is_alive():
        proc.kill()
        proc.join()
        pytest.fail(f"`resnette {' '.join(argv)}` still running after {TIMEOUT} s: a hang")
    with open(log, encoding="utf-8", errors="replace") as f:
        return proc.exitcode, f.read()


# ------------------------------------------------------------------ the property

CASES = [(name, i) for name in sorted(TABLE) for i, e in enumerate(TABLE[name]) if e.args]
PER_CASE = max(2, settings.default.max_examples // 10)   # ci: 2 per command line; long: 30


@pytest.mark.parametrize("name,i", CASES, ids=[f"{n}-{i}" for n, i in CASES])
@settings(max_examples=PER_CASE)
@given(pick=st.integers(0, 100), kind=st.sampled_from(KINDS),
       seed=st.binary(min_size=1, max_size=300))
def test_any_command_with_any_of_its_files_hostile(tiny, name, i, pick, kind, seed):
    entry = TABLE[name][i]
    box = Box(tiny)
    try:
        touched = entry.touches[pick % len(entry.touches)] if entry.touches else RUN[pick % len(RUN)]
        if not (name == "reproduce" and kind == "folder"):   # a folder is what it writes
            box.hostile(touched, kind, seed)
            assert os.path.lexists(box.path(touched)) and box.path(touched).parent.is_dir()
        outputs = tuple(box.top / t for t in entry.touches if t.startswith("out"))
        run_before = snapshot(box.run)
        outside_before = snapshot(box.top, (box.run, box.home, *outputs))
        victim_before = snapshot(box.outside)
        argv = entry.args(box)
        code, log = resnette(box, argv)
        event(f"{touched} as {kind}: exit {code}")
        where = f"`resnette {' '.join(argv)}` with {touched} as {kind}:\n{log[-3000:]}"
        assert "Traceback" not in log and code in (0, 2), where
        if code == 2:
            errors = [ln for ln in log.splitlines() if ln.startswith("error: ")]
            assert len(errors) == 1, where
        assert snapshot(box.outside) == victim_before, "the victim changed: " + where
        assert snapshot(box.top, (box.run, box.home, *outputs)) == outside_before, \
            "written outside the run, the home and the output: " + where
        if entry.may_change is not None:
            allowed = () if code == 2 else entry.may_change
            after = snapshot(box.run)
            changed = {k for k in set(run_before) | set(after) if run_before.get(k) != after.get(k)}
            assert all(any(k == a or k.startswith(a) for a in allowed) for k in changed), \
                f"run files changed: {sorted(changed)}: " + where
    finally:
        box.close()
