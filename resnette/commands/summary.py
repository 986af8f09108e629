"""`resnette summary`: the layer table of an architecture (output shapes, parameters,
multiply-adds), or the list of architectures."""
from __future__ import annotations

import argparse

from resnette.models import create_model, list_models, summary


def main(args: argparse.Namespace) -> None:
    if args.list or not args.arch:
        print("\n".join(list_models()))
        return
    model = create_model(args.arch, n_out=args.classes, c_in=args.c_in)
    s = summary(model, size=args.size, c_in=args.c_in)
    s.model_name = args.arch
    print(s)
