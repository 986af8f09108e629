"""Tests never write under the user's home: tests/conftest.py points RESNETTE_HOME (and
matplotlib's config) into a temporary folder before anything imports resnette."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from resnette.data.sources import resnette_home


def test_resnette_home_in_tests_is_a_temporary_folder_not_the_users_home():
    home = resnette_home().resolve()
    assert Path(tempfile.gettempdir()).resolve() in home.parents
    assert home != (Path.home() / ".cache" / "resnette").resolve()
    assert Path(os.environ["MPLCONFIGDIR"]).resolve() != Path.home().resolve() / ".config"
