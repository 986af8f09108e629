"""Named recipes: whole sets of training settings chosen by measurement, one TOML file each.

    resnette train --recipe fast            # or `recipe = "fast"` in a config file
    resnette recipes                        # the list, one line each

A recipe is a layer of the config (run/config.py): dataclass defaults < dataset preset <
recipe < config file < flags, so any setting of a recipe can be overridden by a flag. The
files live beside this module (resnette/run/recipes/*.toml) and are shipped with the
package; each says why its values are what they are. How they were chosen, with the
numbers: docs/RECIPES.md.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from resnette.files import read_text
from resnette.utils import ResnetteError

FOLDER = Path(__file__).with_name("recipes")


def names() -> list[str]:
    """The recipes shipped with resnette, sorted."""
    return sorted(p.stem for p in FOLDER.glob("*.toml"))


def _read(name: str) -> dict[str, Any]:
    if name not in names():
        raise ResnetteError(f"unknown recipe {name!r}; choose one of: {', '.join(names())} "
                            "(`resnette recipes` describes them)")
    return tomllib.loads(read_text(FOLDER / f"{name}.toml", "recipe"))


def settings(name: str) -> dict[str, Any]:
    """The config keys recipe `name` sets (its `[train]` table)."""
    return dict(_read(name).get("train", {}))


def summary(name: str) -> str:
    """The recipe's one-line description."""
    return str(_read(name).get("summary", ""))
