"""The child of tests/faults/test_fuzz_fs.py: `resnette ARGV` in a process of its own.

Not forked from pytest itself: in the full suite earlier tests have run torch in pytest's
process, and a child forked from a process whose OpenMP pool and other threads held locks at
the fork can wait on such a lock forever (seen: a futex wait until the fuzzer's timeout). So
the fuzzer forks from multiprocessing's forkserver, a clean single-threaded process that has
imported torch and resnette once (fast: no interpreter start per example), and the target
lives here, in a module that imports nothing of the tests.
"""
from __future__ import annotations

import io
import os
import sys


def child(argv: list[str], cwd: str, home: str, log: str) -> None:
    os.chdir(cwd)
    os.environ["RESNETTE_HOME"] = home
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), write_through=True)
    try:
        from resnette.cli import main
        code = main(argv)
    except SystemExit as e:   # argparse
        code = e.code if isinstance(e.code, int) else 2
    except BaseException:   # a traceback: the test sees it in the log
        import traceback
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
