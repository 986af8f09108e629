"""`resnette recipes`: the named recipes (resnette/run/recipes/*.toml), one line each, or one
recipe's settings in full."""
from __future__ import annotations

import argparse

from resnette.run import recipes
from resnette.run.tomlfile import toml_value   # not run.config: it imports torch


def main(args: argparse.Namespace) -> None:
    if args.name:
        for key, value in recipes.settings(args.name).items():   # unknown name: one error line
            print(f"{key} = {toml_value(value)}")
        return
    width = max(len(n) for n in recipes.names())
    for name in recipes.names():
        print(f"{name:<{width}}  {recipes.summary(name)}")
