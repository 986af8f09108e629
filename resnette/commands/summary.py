"""`resnette summary`: the layer table of an architecture (output shapes, parameters,
multiply-adds), or the list of architectures."""
from __future__ import annotations

import argparse

from resnette.models import create_model, list_models, summary
from resnette.utils import ResnetteError


def main(args: argparse.Namespace) -> None:
    flag = getattr(args, "arch_flag", None)   # `--arch NAME`, as train and lr-find spell it
    if flag and args.arch and flag != args.arch:
        raise ResnetteError(f"two architectures given ({args.arch} and --arch {flag}); give one")
    args.arch = args.arch or flag
    if args.list or not args.arch:
        print("\n".join(list_models()))
        return
    model = create_model(args.arch, n_out=args.classes, c_in=args.c_in)
    try:
        s = summary(model, size=args.size, c_in=args.c_in)
    except (RuntimeError, MemoryError) as e:   # the allocator's own words, in one line
        if "alloc" not in str(e) and not isinstance(e, MemoryError):
            raise
        raise ResnetteError(f"not enough memory for {args.arch} at {args.size} px "
                            f"({str(e).splitlines()[0][:120]}); try a smaller --size") from None
    s.model_name = args.arch
    print(s)
