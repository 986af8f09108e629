"""The `resnette` command line. Thin on purpose: each subcommand parses its arguments and
calls one function of the modules that do the work.

Every training option is a field of `resnette.config.TrainConfig`; the flags are generated
from those fields, so a flag, a config-file key and the saved config.toml always agree.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Sequence

from resnette import config as config_mod
from resnette.utils import ResnetteError

EXAMPLES = {
    "train": """examples:
  resnette train --data digits                       # ~1 minute on a laptop CPU
  resnette train --data imagenette-160 --arch xresnet18 --size 128 --epochs 5 --lr 3e-3
  resnette train --data ~/my-photos --init-from runs/imagenette-160-xresnet18-128px --epochs 3
  resnette train --config run.toml --epochs 10       # flags override the file
  resnette train --name my-run --resume              # continue an interrupted run""",
    "lr-find": """examples:
  resnette lr-find --data digits
  resnette lr-find --data imagenette-160 --arch xresnet18 --size 128""",
    "evaluate": """examples:
  resnette evaluate runs/digits-xresnet18-32px
  resnette evaluate runs/digits-xresnet18-32px --tta
  resnette evaluate runs/my-run --folder ~/more-photos   # <folder>/<label>/*.jpg""",
    "predict": """examples:
  resnette predict runs/digits-xresnet18-32px some/image.png
  resnette predict runs/my-run/model.safetensors photos/ --top 3 --json
  resnette predict export/model.safetensors photo.jpg --tta""",
    "export": """examples:
  resnette export runs/digits-xresnet18-32px --format onnx          # -> runs/.../model.onnx
  resnette export runs/digits-xresnet18-32px --format safetensors --out exported/""",
    "summary": """examples:
  resnette summary xresnet50 --size 224
  resnette summary --list""",
    "reproduce": """examples:
  resnette reproduce chapter14 --quick                 # every experiment, tiny: a smoke test
  resnette reproduce chapter14 --only xresnet18
  resnette reproduce chapter14 --data /path/to/imagenette2-160""",
    "bench": """examples:
  resnette bench
  resnette bench --quick""",
    "report": """examples:
  resnette report runs/digits-xresnet18-32px        # -> runs/digits-xresnet18-32px/report.html""",
}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one `error:` line (exit 2), like our other errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def add_train_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field. Defaults are SUPPRESSed so that only flags the user
    typed reach the config (a flag must not silently undo a config-file value)."""
    p.add_argument("--config", metavar="FILE", help="TOML file with any of the options below")
    group = p.add_argument_group("training options (also config-file keys)")
    hints = config_mod.type_hints()
    for f in fields(config_mod.TrainConfig):
        kind = config_mod.base_type(hints[f.name])
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} (default: {_show(default)})"
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
        elif kind is list:
            group.add_argument(flag, nargs="*", type=int, default=argparse.SUPPRESS,
                               metavar="SIZE", help=help_text)
        else:
            group.add_argument(flag, type=kind, default=argparse.SUPPRESS, dest=f.name,
                               metavar=f.name.upper(), help=help_text)


def _show(v: Any) -> str:
    return "unset" if v is None else str(v)


def train_config(args: argparse.Namespace) -> config_mod.TrainConfig:
    flags = {f.name: getattr(args, f.name) for f in fields(config_mod.TrainConfig)
             if hasattr(args, f.name)}
    if getattr(args, "resume", False) and not args.config:
        from resnette.workflow import resume_config
        return resume_config(flags.get("name"), flags.get("run_dir"), flags)
    file_values = config_mod.read_toml(args.config) if args.config else {}
    return config_mod.make_config(file_values, flags)


# ------------------------------------------------------------------------ subcommands

def cmd_train(args: argparse.Namespace) -> None:
    from resnette.workflow import train
    run = train(train_config(args), resume=args.resume, overwrite=args.overwrite,
                quiet=args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun: once, not once per process
        print(f"run saved in {run.path}  (next: resnette report {run.path})")


def cmd_lr_find(args: argparse.Namespace) -> None:
    from resnette.workflow import lr_find_run
    run, found = lr_find_run(train_config(args), overwrite=args.overwrite, quiet=args.quiet)
    print(f"suggested learning rates: valley {found.valley:.2e}  steepest "
          f"{found.steepest:.2e}  minimum/10 {found.minimum:.2e}")
    print(f"plot: {run.plot('lr_find')}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from resnette.evaluate import evaluate_run
    from resnette.predict import format_evaluation
    ev = evaluate_run(args.run, split=args.split, folder=args.folder, tta=args.tta, bs=args.bs)
    print(json.dumps(ev, indent=1) if args.json else format_evaluation(ev))


def cmd_predict(args: argparse.Namespace) -> None:
    from resnette.predict import find_images, format_predictions, predict_files
    from resnette.trained import load_trained
    trained = load_trained(args.model, config=args.config)
    preds = predict_files(trained, find_images(args.images), k=args.top, tta=args.tta)
    if args.json:
        print(json.dumps([p.as_dict() for p in preds], indent=1))
    else:
        print(format_predictions(preds))


def cmd_export(args: argparse.Namespace) -> None:
    from resnette.export import export
    print(f"exported {export(args.run, args.format, args.out)}")


def cmd_summary(args: argparse.Namespace) -> None:
    from resnette.models import create_model, list_models, summary
    if args.list or not args.arch:
        print("\n".join(list_models()))
        return
    model = create_model(args.arch, n_out=args.classes, c_in=args.c_in)
    s = summary(model, size=args.size, c_in=args.c_in)
    s.model_name = args.arch
    print(s)


def cmd_reproduce(args: argparse.Namespace) -> None:
    from resnette.reproduce import reproduce
    out = reproduce(args.what, only=args.only, quick=args.quick, data=args.data,
                    out_dir=args.out, quiet=args.quiet)
    print(f"\nwritten to {out}")


def cmd_bench(args: argparse.Namespace) -> None:
    from resnette.throughput import bench_table
    print(bench_table(quick=args.quick, device=args.device))


def cmd_report(args: argparse.Namespace) -> None:
    from resnette.report import build_report
    print(f"report: {build_report(args.run, args.out)}")


# --------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="resnette", description="Train ResNets for image classification from "
                    "scratch: the fastai book's chapter 14 as software.",
                    epilog="quick start:  resnette train --data digits",
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=Parser)

    def command(name: str, func, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, epilog=EXAMPLES[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    for name, func, help in (("train", cmd_train, "train a model into a run folder"),
                             ("lr-find", cmd_lr_find, "run the learning rate finder")):
        p = command(name, func, help)
        p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
        p.add_argument("--quiet", action="store_true", help="no progress bars or tables")
        if name == "train":
            p.add_argument("--resume", action="store_true",
                           help="continue the run (--name/--run-dir) from its checkpoint")
        add_train_flags(p)

    p = command("evaluate", cmd_evaluate, "accuracy, top-5, per-class accuracy, confusion matrix")
    p.add_argument("run", help="run folder")
    p.add_argument("--split", choices=("valid", "train"), default="valid")
    p.add_argument("--folder", help="evaluate a folder laid out <label>/*.jpg instead")
    p.add_argument("--tta", action="store_true", help="average with horizontally flipped images")
    p.add_argument("--bs", type=int, default=64, help="batch size (default: 64)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")

    p = command("predict", cmd_predict, "class names and probabilities for images")
    p.add_argument("model", help="run folder or .safetensors file")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--top", "-k", type=int, default=3, help="how many classes to show (default: 3)")
    p.add_argument("--tta", action="store_true", help="average with horizontally flipped images")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--config", help="config.toml for a bare .safetensors file")

    p = command("export", cmd_export, "export a trained model as ONNX or safetensors + config")
    p.add_argument("run", help="run folder or .safetensors file")
    p.add_argument("--format", choices=("onnx", "safetensors"), default="onnx")
    p.add_argument("--out", help="output file (onnx) or folder (safetensors)")

    p = command("summary", cmd_summary, "layer table: output shapes, parameters, multiply-adds")
    p.add_argument("arch", nargs="?", help="architecture name")
    p.add_argument("--size", type=int, default=128, help="input size (default: 128)")
    p.add_argument("--c-in", type=int, default=3, help="input channels (default: 3)")
    p.add_argument("--classes", type=int, default=10, help="outputs (default: 10)")
    p.add_argument("--list", action="store_true", help="list the architectures")

    p = command("reproduce", cmd_reproduce, "rerun the chapter's experiments beside its numbers")
    p.add_argument("what", choices=("chapter14",), help="what to reproduce")
    p.add_argument("--only", help="one experiment (see the list printed by --only help)")
    p.add_argument("--quick", action="store_true", help="a few hundred images, 1 epoch (CI)")
    p.add_argument("--data", help="Imagenette folder (default: the named imagenette-160)")
    p.add_argument("--out", default="runs/reproduce-chapter14", help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars or tables")

    p = command("bench", cmd_bench, "data, model and end-to-end throughput of this machine")
    p.add_argument("--quick", action="store_true", help="shorter timings")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")

    p = command("report", cmd_report, "one self-contained HTML page about a run")
    p.add_argument("run", help="run folder")
    p.add_argument("--out", help="output file (default: <run>/report.html)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ResnetteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `resnette predict ... | head`: the reader left, that is fine
        sys.stdout = open(os.devnull, "w")
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
