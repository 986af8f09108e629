"""Where `resnette train --compile` keeps torch.compile's work: `$RESNETTE_HOME/compiled`.

A leaf (the standard library only), so `resnette cache` can show it without torch.

Inductor writes the C++ it generates, the compiled kernels, and (FX graph and AOTAutograd
caches) the graphs they belong to under one folder, keyed by the model, the shapes, the dtypes
and torch's version. A second run of the same model and sizes loads them instead of compiling
again (BENCHMARKS.md, "Compiled training steps on a CPU", has the cold and warm times). By
default torch puts them in the system's temporary folder, which a reboot may empty; beside
the decoded images they are kept, and `resnette cache` shows how much room they take.
"""
from __future__ import annotations

import os
from pathlib import Path

from resnette.cachedir import default_dir
from resnette.utils import ResnetteError

TORCH_ENV = "TORCHINDUCTOR_CACHE_DIR"   # torch reads the folder from here, and only here


def compiled_dir() -> Path:
    """The folder torch.compile uses: TORCHINDUCTOR_CACHE_DIR when set (the user's choice
    stands), else `$RESNETTE_HOME/compiled`."""
    return Path(os.environ.get(TORCH_ENV) or default_dir().parent / "compiled")


def use_compiled_dir() -> Path:
    """Point this process's torch.compile at `$RESNETTE_HOME/compiled`, unless the user named
    a folder. Importing any part of torch._inductor writes torch's default (a folder in /tmp)
    into TORCHINDUCTOR_CACHE_DIR, so that value does not count as the user's choice. Call
    before the first compilation: torch reads the variable whenever it needs the folder."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    if os.environ.get(TORCH_ENV) in (None, "", default_cache_dir()):
        os.environ[TORCH_ENV] = str(default_dir().parent / "compiled")
    folder = Path(os.environ[TORCH_ENV])
    if os.path.lexists(folder) and not folder.is_dir():   # found before any run folder is made
        raise ResnetteError(f"{folder} is not a folder; torch.compile keeps its caches there: "
                            f"move it away, or set {TORCH_ENV} to a folder")
    return folder
