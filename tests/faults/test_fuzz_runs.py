"""Property-based tests (Hypothesis) in real `python -m resnette` processes: a damaged run
folder under any command, and any combination of training flags and config files.

The invariants, for every example:
- exit 0, or exit 2 with exactly one line on stderr (`error: ...`) and no traceback;
- nothing written outside the run folder and RESNETTE_HOME (the rest of a sandbox, the data
  and a private $HOME are hashed before and after);
- no existing run file changed unless the command exists to change it (a refusal changes
  nothing at all);
- no hang: every process runs under a timeout.
One tiny run is trained once per session and copied for each example. Profiles: see
test_fuzz.py (`ci` by default, HYPOTHESIS_PROFILE=long for hundreds of examples).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

import test_fuzz  # noqa: F401  (registers and loads the Hypothesis profiles)

pytestmark = pytest.mark.slow
TIMEOUT = 120
FEW = max(2, settings.default.max_examples // 3)   # each example is a process: a few seconds
SKIP = (".lock",)


def files(folder: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """sha256 of every file under `folder` (links by target), but those under `skip`."""
    out = {}
    for p in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if p.name in SKIP or any(p == s or s in p.parents for s in skip):
            continue
        if p.is_symlink():
            out[str(p.relative_to(folder))] = "-> " + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            out[str(p.relative_to(folder)) + "/"] = ""
    return out


def clean_images(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("valid", 4)):
        for label, level in (("a", 60), ("b", 190)):
            (root / split / label).mkdir(parents=True)
            for i in range(n):
                px = np.clip(level + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(px).save(root / split / label / f"{i}.png")
    return root


def resnette(args: list[str], cwd: Path, home: Path, user: Path,
             **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resnette", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
                          env={**os.environ, "RESNETTE_HOME": str(home), "HOME": str(user),
                               "OMP_NUM_THREADS": "1", "MPLCONFIGDIR": str(home / "mpl"),
                               **env})


def train_args(data: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--arch", "simple_cnn", "--size", "32", "--presize", "32",
            "--bs", "4", "--epochs", "1", "--lr", "0.01", "--device", "cpu", "--precision",
            "fp32", "--quiet", *extra]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A finished one-epoch run on 24 clean 32 px images (trained once per session)."""
    top = tmp_path_factory.mktemp("fuzz")
    data, home, user = clean_images(top / "images"), top / "home", top / "user"
    user.mkdir()
    proc = resnette(train_args(data, "--name", "tiny"), top, home, user)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = top / "runs" / "tiny"
    deadline = time.monotonic() + 60   # the background report ends by itself
    while ((run / ".lock").exists() or not (run / "report.html").exists()) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    return {"run": run, "data": data, "home": home}


class Sandbox:
    """A temporary cwd with a copy of the tiny run as runs/r and a private $HOME."""

    def __init__(self, tiny: dict[str, Path]) -> None:
        self.tiny = tiny
        self.top = Path(tempfile.mkdtemp(prefix="fuzz-", dir=tiny["run"].parent.parent))
        self.run = self.top / "runs" / "r"
        shutil.copytree(tiny["run"], self.run, ignore=shutil.ignore_patterns(".lock", ".*.tmp"))
        self.user = self.top / "user"
        self.user.mkdir()

    def outside(self, *allowed: Path) -> dict[str, str]:
        """Everything a command may not write: the sandbox but the run folder and `allowed`,
        the data, and $HOME (inside the sandbox)."""
        return {**files(self.top, (self.run, *allowed)),
                **{f"data/{k}": v for k, v in files(self.tiny["data"]).items()}}

    def __call__(self, args: list[str], **env: str) -> subprocess.CompletedProcess:
        return resnette(args, self.top, self.tiny["home"], self.user, **env)

    def close(self) -> None:
        shutil.rmtree(self.top, ignore_errors=True)


def check_exit(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode in (0, 2), (proc.returncode, proc.stderr[-3000:])
    if proc.returncode == 2:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]


# ------------------------------------------------------------ damaged run folder x command

RUN_FILES = ["config.toml", "classes.json", "metrics.csv", "evaluation.json",
             "model.safetensors", "best.safetensors", "checkpoint.pt", "plots/top_losses.npz",
             "plots/augmented_batch.npz"]
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-3, 10**6)
                           | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
DAMAGE = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1)),
    st.tuples(st.just("replace"), st.binary(max_size=64)),
    st.tuples(st.just("delete"), st.none()),
    st.tuples(st.just("folder"), st.none()),
    st.tuples(st.just("json"), st.tuples(st.sampled_from(["vocab", "names", "mean", "std",
                                                          "channels", "n", "accuracy", "split",
                                                          "confusion", "per_class", "names"]),
                                         JSON_VALUES)),
    st.tuples(st.just("toml"), st.tuples(st.sampled_from(["size", "presize", "arch", "test_size",
                                                          "progressive", "act", "recipe"]),
                                         st.sampled_from(['0', '5000', '"x"', '[1, 2]', 'true',
                                                          '"fast"', '-1', '1e400', '[]']))))


def damage(path: Path, how: tuple) -> None:
    kind, arg = how
    data = path.read_bytes() if path.is_file() else b""
    if kind == "truncate":
        path.write_bytes(data[:int(len(data) * arg)])
    elif kind == "flip" and data:
        i = min(int(len(data) * arg), len(data) - 1)
        path.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
    elif kind == "replace":
        path.write_bytes(arg)
    elif kind == "delete":
        path.unlink(missing_ok=True)
    elif kind == "folder":
        path.unlink(missing_ok=True)
        path.mkdir()
    elif kind == "json" and path.suffix == ".json":
        obj = json.loads(data)
        obj[arg[0]] = arg[1]
        path.write_text(json.dumps(obj))
    elif kind == "toml" and path.suffix == ".toml":
        lines = [ln for ln in data.decode().splitlines() if not ln.startswith(f"{arg[0]} =")]
        path.write_text("\n".join(lines + [f"{arg[0]} = {arg[1]}"]) + "\n")


COMMANDS = {   # name -> (arguments after the run folder, files of the run it may change)
    "predict": (lambda box: ["predict", str(box.run), str(box.tiny["data"] / "valid")], ()),
    "evaluate": (lambda box: ["evaluate", str(box.run)], ("evaluation.json", "plots/")),
    "evaluate-train": (lambda box: ["evaluate", str(box.run), "--split", "train", "--bs", "3"],
                       ("evaluations/",)),
    "evaluate-folder": (lambda box: ["evaluate", str(box.run), "--folder",
                                     str(box.tiny["data"] / "valid"), "--tta"], ("evaluations/",)),
    "export": (lambda box: ["export", str(box.run), "--format", "safetensors", "--out",
                            str(box.top / "out")], ()),
    "report": (lambda box: ["report", str(box.run)], ("report.html", "plots/")),
    "resume": (lambda box: ["train", "--resume", "--run-dir", str(box.run), "--quiet"], None),
}


@settings(max_examples=FEW)
@given(target=st.sampled_from(RUN_FILES), how=DAMAGE, verb=st.sampled_from(sorted(COMMANDS)))
def test_any_damaged_run_file_under_any_command(tiny, target, how, verb):
    box = Sandbox(tiny)
    try:
        damage(box.run / target, how)
        argv, may_change = COMMANDS[verb]
        run_before, outside_before = files(box.run), box.outside(box.top / "out")
        proc = box(argv(box))
        check_exit(proc)
        assert box.outside(box.top / "out") == outside_before, "written outside the run folder"
        run_after = files(box.run)
        if may_change is not None:   # (train --resume exists to change the run)
            allowed = () if proc.returncode == 2 else may_change
            changed = {k for k in set(run_before) | set(run_after)
                       if run_before.get(k) != run_after.get(k)}
            assert all(any(k == a or k.startswith(a) for a in allowed) for k in changed), changed
        assert "nan%" not in proc.stdout
    finally:
        box.close()


# ------------------------------------------------------------ training flags and config files

SIZE = st.sampled_from(["32", "48", "64", "16", "5000", "x"])
TRAIN_EXTRA = st.lists(st.one_of(
    st.tuples(st.sampled_from(["--size", "--presize", "--test-size"]), SIZE).map(list),
    st.tuples(st.just("--progressive"), st.lists(SIZE, max_size=3)).map(lambda t: [t[0], *t[1]]),
    st.sampled_from([["--recipe", "fast"], ["--recipe", "chapter"], ["--epochs", "2"],
                     ["--bs", "1"], ["--bs", "100"], ["--lr", "1e30"], ["--wd", "1e30"],
                     ["--mixup", "0.4"], ["--cutmix", "1"], ["--label-smoothing", "0.1"],
                     ["--schedule", "flat_cos"], ["--ema", "0.9"], ["--clip", "1"],
                     ["--name", "../x"], ["--name", "n" * 300], ["--name", "a b"],
                     ["--overwrite"], ["--resume"], ["--init-from", "runs/r"],
                     ["--arch", "resblock_cnn"], ["--aug", "crop_flip"], ["--valid-pct", "0.5"],
                     ["--valid-every", "0"], ["--seed", "-1"], ["--compile"]])), max_size=5)
TOML_LINES = st.lists(st.sampled_from([
    'size = 48', 'presize = 48', 'progressive = [32, 48]', 'test_size = 64', 'recipe = "fast"',
    'epochs = 1', 'bs = "4"', 'lr = nan', 'arch = "nope"', 'size = 32', 'data = ""',
    '[train]', 'x = ', 'name = "toml-run"', 'seed = 18446744073709551616', 'run_dir = "runs/r"']),
    max_size=4)


@settings(max_examples=FEW)
@given(extra=TRAIN_EXTRA, toml=TOML_LINES)
def test_any_training_flags_and_config_file(tiny, extra, toml):
    box = Sandbox(tiny)
    try:
        (box.top / "c.toml").write_text("\n".join(toml) + "\n")
        args = train_args(box.tiny["data"], "--name", "n", *[a for e in extra for a in e])
        if toml:
            args += ["--config", str(box.top / "c.toml")]
        runs = box.top / "runs"
        before = {k: v for k, v in files(runs).items()}
        outside = box.outside(runs)
        proc = box(args)
        check_exit(proc)
        assert box.outside(runs) == outside, "written outside the runs folder"
        after = files(runs)
        touched = {k.split("/")[0] for k in set(before) | set(after)
                   if before.get(k) != after.get(k)}
        asked = proc.returncode == 0 and ("--overwrite" in args or "--resume" in args)
        assert asked or "r" not in touched, "the existing run changed"   # refusals: nothing
    finally:
        box.close()
