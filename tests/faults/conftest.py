"""Helpers for the fault-injection suite: real `python -m resnette` processes on a tiny image
folder, killed, interrupted, starved of disk or fed bad files, then checked for lost data.

Every process gets a timeout, so a hang fails the test instead of stalling CI. The training
runs are the chapter's plain 5-stage net (simple_cnn) on 48 images of 32 px, 3 epochs of 6
batches: a whole run takes seconds, and the same seed gives the same numbers in every process.
Faults that need precise timing (a sleep per step or mid-save, a NaN or out of memory at a
given batch) run the command through `launcher.py`, which injects them from outside the
package; `resnette/` itself knows nothing about tests.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TIMEOUT = 120          # seconds any one process may take before the test fails
EPOCHS = 3


def train_args(data: Path, name: str, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--arch", "simple_cnn", "--size", "32", "--presize", "32",
            "--bs", "8", "--epochs", str(EPOCHS), "--lr", "0.01", "--seed", "1", "--device", "cpu",
            "--precision", "fp32", "--quiet", "--name", name, *extra]


LAUNCHER = Path(__file__).with_name("launcher.py")


def env(home: Path, **more: str) -> dict[str, str]:
    return {**os.environ, "RESNETTE_HOME": str(home), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            **more}


def command(args: list[str], fault: str | None) -> list[str]:
    """`python -m resnette ARGS`, or through the launcher that injects `fault`."""
    if fault:
        return [sys.executable, str(LAUNCHER), fault, "--", *args]
    return [sys.executable, "-m", "resnette", *args]


def run(args: list[str], cwd: Path, home: Path, fault: str | None = None, timeout: float = TIMEOUT,
        preexec_fn=None, **more: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(args, fault), cwd=cwd, env=env(home, **more),
                          capture_output=True, text=True, timeout=timeout, preexec_fn=preexec_fn)


def start(args: list[str], cwd: Path, home: Path, fault: str | None = None) -> subprocess.Popen:
    return subprocess.Popen(command(args, fault), cwd=cwd, env=env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, proc: subprocess.Popen | None = None, timeout: float = TIMEOUT,
             every: float = 0.01) -> None:
    """Poll `condition()` until true; fail if the process ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process ended (rc {proc.returncode}) before the moment to strike:\n{err[-2000:]}")
        if time.monotonic() > deadline:
            if proc is not None:
                proc.kill()
            pytest.fail("timed out waiting for the moment to strike")
        time.sleep(every)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, out, err


def metric_rows(run_dir: Path) -> list[list[str]]:
    """metrics.csv without its time column: what must match between two runs."""
    lines = (run_dir / "metrics.csv").read_text().strip().splitlines()
    return [line.split(",")[:-1] for line in lines]


def n_rows(run_dir: Path) -> int:
    p = run_dir / "metrics.csv"
    return len(p.read_text().strip().splitlines()) - 1 if p.exists() else 0


def one_error_line(stderr: str) -> str:
    """The process explained itself in one `error:` line and printed no traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` (to prove nothing was touched)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def position(checkpoint: Path) -> dict:
    from resnette.train.checkpoints import load_checkpoint
    return load_checkpoint(checkpoint)["position"]


def copy_run(src: Path, cwd: Path, name: str) -> Path:
    dst = cwd / "runs" / name
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------ the data

def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A real decompression-bomb PNG: 900 M one-bit pixels, all black, in ~110 KB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" * (1 + (width + 7) // 8)            # filter byte + packed bits
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row * 1000) for _ in range(height // 1000)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


BAD_IMAGES = {   # file name (in train/a) -> what is wrong with it
    "truncated.png": "cut off half way",
    "empty.jpg": "zero bytes",
    "notes.jpg": "text, not an image",
    "bomb.png": "30000 x 30000 pixels in 110 KB",
}


def make_image_folder(root: Path, n_train: int = 24, n_valid: int = 8) -> Path:
    """Two classes told apart by brightness, 32 px, plus one of each kind of bad file."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("valid", n_valid)):
        for label, base in (("a", 60), ("b", 190)):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(base + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    bad = root / "train" / "a"
    good = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(good, format="PNG")
    (bad / "truncated.png").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "notes.jpg").write_text("these are my notes, not a photo\n")
    (bad / "bomb.png").write_bytes(bomb_png())
    return root


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict[str, Path]:
    """The shared image folder and cache home (the decoded cache is built once)."""
    top = tmp_path_factory.mktemp("faults")
    return {"data": make_image_folder(top / "images"), "home": top / "home", "top": top}


@pytest.fixture(scope="session")
def baseline(world) -> dict:
    """The uninterrupted run every interrupted-then-resumed run must end up equal to."""
    cwd = world["top"] / "baseline"
    cwd.mkdir()
    proc = run(train_args(world["data"], "base"), cwd, world["home"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"run": cwd / "runs" / "base", "stderr": proc.stderr, "rows": metric_rows(cwd / "runs" / "base")}


@pytest.fixture
def cwd(tmp_path) -> Path:
    return tmp_path


def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    proc.send_signal(sig)
