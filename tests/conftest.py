"""What every test gets: a private RESNETTE_HOME, and the `slow` marker behind the fast loop.

The fast loop, `python -m pytest -m "not slow" tests`, leaves out what costs seconds per test:
real `python -m resnette` processes that train, torchrun, wheel builds, executed notebooks,
the fault and fuzz suites, and tests that train for more than a second or so. CI runs
everything. A test is slow when its module is listed in SLOW_MODULES (whole files of such
tests), when tests/slow.txt names it (measured: how it was made is at its top), or when it
carries `@pytest.mark.slow` itself.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

# Files whose every test starts processes or trains for real (seconds each).
SLOW_MODULES = {
    "test_cli.py", "test_cli_reproduce.py", "test_cli_startup.py", "test_cli_train.py", "test_distributed.py",
    "test_distributed_group.py", "test_models_export.py", "test_notebook.py", "test_packaging.py",
    "test_report.py", "test_startup.py", "test_tensorboard.py", "test_train_integration.py",
}
SLOW_FOLDERS = {"faults"}          # the fault-injection and fuzz suites
SLOW_TESTS = {line.strip() for line in (TESTS / "slow.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}

_HOME: tempfile.TemporaryDirectory | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Point resnette's home (datasets, decode caches) and matplotlib's config into a temporary
    folder before any test imports resnette, so no test ever writes under the user's ~."""
    global _HOME
    _HOME = tempfile.TemporaryDirectory(prefix="resnette-tests-home-")
    os.environ["RESNETTE_HOME"] = str(Path(_HOME.name) / "resnette")
    os.environ.setdefault("MPLCONFIGDIR", str(Path(_HOME.name) / "matplotlib"))


def pytest_unconfigure(config: pytest.Config) -> None:
    if _HOME is not None:
        shutil.rmtree(_HOME.name, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        relative = path.relative_to(TESTS)
        node = "::".join([relative.as_posix(), *item.nodeid.split("::")[1:]])
        if (path.name in SLOW_MODULES or SLOW_FOLDERS & set(relative.parts[:-1])
                or node in SLOW_TESTS):
            item.add_marker(pytest.mark.slow)
