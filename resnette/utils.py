"""Small helpers shared by every layer: the user-facing error, error lines, seeding (files: files.py).

Imports no torch and no NumPy at import time: the command line reads this module for every
command, and `resnette --version` or `recipes` must not pay ~2 s for torch on a small CPU."""
from __future__ import annotations

import errno
import os
import random
from pathlib import Path


class ResnetteError(Exception):
    """A problem the user can fix. The message is one line: what went wrong, what to do.

    The command line prints it as `error: <message>` and exits with code 2, so nothing the
    user did wrong ever ends in a traceback from deep inside PyTorch or Pillow.
    """


NAME_MAX = 255   # bytes in one file or folder name on Linux, macOS and Windows file systems


def long_name(path: str | os.PathLike, limit: int = NAME_MAX) -> str | None:
    """The first component of `path` longer than `limit` bytes, or None."""
    return next((part for part in Path(path).parts if len(os.fsencode(part)) > limit), None)


def os_error_line(e: OSError) -> str:
    """One line for an OSError no layer below expected: what, where; for a name too long,
    which name and by how much (ENAMETOOLONG's own text does not say)."""
    where = e.filename if e.filename is not None else ""
    if e.errno == errno.ENAMETOOLONG and where:
        part = long_name(os.fsdecode(where))
        if part is not None:
            n = len(os.fsencode(part))
            return (f"the name {part[:40]!r}... is {n} bytes, over the {NAME_MAX} bytes a file "
                    f"or folder name may have (in {os.fsdecode(where)[:80]!r}...); shorten it")
        return (f"the path {os.fsdecode(where)[:60]!r}... is {len(os.fsencode(where))} bytes, "
                "too long for this system; use a shorter one")
    shown = os.fsdecode(where) if where else ""
    return f"{e.strerror or e}" + (f": {shown}" if shown else "")


_OOM_ADVICE = {   # what to make smaller, per command, when memory runs out outside a train step
    "train": "use a smaller --bs, --size/--presize (and --progressive sizes) or --test-size",
    "lr-find": "use a smaller --bs or --size/--presize",
    "evaluate": "use a smaller --bs or --test-size", "predict": "give fewer images at once",
    "summary": "use a smaller --size or --classes",
}


def out_of_memory_line(command: str, e: BaseException) -> str | None:
    """One line for running out of memory (torch's OutOfMemoryError, the CPU allocator's
    RuntimeError, NumPy's or Python's MemoryError) anywhere outside the guarded training
    step: resizing or augmenting a batch, evaluating at a large size, predicting. None for
    an error that is not about memory."""
    text = str(e)
    if not (isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"
            or "out of memory" in text or "can't allocate memory" in text):
        return None
    first = text.strip().splitlines()[0][:160] if text.strip() else type(e).__name__
    return (f"out of memory in `resnette {command}` ({first}); "
            f"{_OOM_ADVICE.get(command, 'free some memory (other programs), then run again')}")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch so the same seed on the same machine repeats a run.

    NumPy and torch are imported here, not above: every caller trains, so has them loaded."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
