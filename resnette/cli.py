"""The `resnette` command line: the parser, and nothing else.

Each subcommand's arguments are parsed here and handed to `main(args)` of its module in
resnette/commands/ (one module per verb), which does the work and prints the result.
Every training option is a field of `resnette.run.config.TrainConfig`; the flags are
generated from those fields, so a flag, a config-file key and the saved config.toml agree.

It answers at once: only the command being run gets its arguments (train's flags come from
the config module, whose limits import torch), so `resnette --version`, `--help` and
`recipes` start without torch (tests/test_cli_startup.py; benchmarks/startup.py times them).
"""
from __future__ import annotations

import argparse
import importlib
import sys
import threading
import warnings
from dataclasses import MISSING, fields
from typing import Any, Callable, Sequence

from resnette.cli_examples import EXAMPLES
from resnette.display import term, warning_line
from resnette.files import null_stream
from resnette.utils import ResnetteError, os_error_line, out_of_memory_line

class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one `error:` line (exit 2), like our other errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {term(message)} (see `{self.prog} --help`)\n")


def add_train_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field. Defaults are SUPPRESSed so that only flags the user
    typed reach the config (a flag must not silently undo a config-file value)."""
    from resnette.run import config as config_mod   # torch, through the Learner's limits
    p.add_argument("--config", metavar="FILE", help="TOML file with any of the options below")
    group = p.add_argument_group("training options (also config-file keys)")
    hints = config_mod.type_hints()
    for f in fields(config_mod.TrainConfig):
        kind = config_mod.base_type(hints[f.name])
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} (default: {'unset' if default is None else default})"
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
        elif kind is list:
            group.add_argument(flag, nargs="*", type=int, default=argparse.SUPPRESS,
                               metavar="SIZE", help=help_text)
        else:
            group.add_argument(flag, type=kind, default=argparse.SUPPRESS, dest=f.name,
                               metavar=f.name.upper(), help=help_text,
                               **{k: f.metadata[k] for k in ("nargs", "const") if k in f.metadata})


def limited(key: str, kind: type = int) -> Callable[[str], Any]:
    """An argparse type for a flag that shares a setting's limits (train/settings.py's LIMITS,
    the one table): `--bs 0` is refused by the parser, one line, exit 2, like `train --bs 0`."""
    from resnette.train.settings import LIMITS   # torch: only for the command that needs it
    test, what = LIMITS[key]

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    convert.__name__ = kind.__name__  # argparse names the type in its own messages
    return convert


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type for a count that is not a setting (top-k, classes, channels)."""
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    convert.__name__ = "int"
    return convert


def version() -> str:
    """`resnette <version>`, the installed package's version."""
    import resnette
    from importlib.metadata import version as installed
    return f"resnette {getattr(resnette, '__version__', None) or installed('resnette')}"


# the module of resnette/commands/ that runs each verb
COMMANDS = {"train": "train", "lr-find": "lr_find", "evaluate": "evaluate", "predict": "predict",
            "export": "export", "summary": "summary", "reproduce": "reproduce", "bench": "bench",
            "report": "report", "recipes": "recipes", "runs": "runs", "cache": "cache"}


# --------------------------------------------------------------------------- parser

def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `command`, only that command's arguments are added (the others are
    listed with their one-line help), which is all `main` needs. "" adds none."""
    parser = Parser(prog="resnette", description="Train ResNets for image classification from "
                    "scratch: the fastai book's chapter 14 as software.",
                    epilog="quick start:  resnette train --data digits",
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=Parser)
    for name, (help, add_arguments) in ARGUMENTS.items():
        p = sub.add_parser(name, help=help, description=help, epilog=EXAMPLES[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if command is None or command == name:
            add_arguments(p)
    return parser


def _training(name: str) -> Callable[[argparse.ArgumentParser], None]:
    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("--quiet", action="store_true", help="no progress bars or tables")
        if name == "train":
            p.add_argument("--overwrite", action="store_true",
                           help="replace an existing run folder")
            p.add_argument("--resume", action="store_true",
                           help="continue the run (--name/--run-dir) from its checkpoint")
        else:   # lr-find writes its plot only, never a run folder
            p.add_argument("--out", metavar="FILE", help="where the plot goes (default: the "
                           "named run's plots/lr_find.png, else lr_find-<name>.png here)")
        add_train_flags(p)
    return add


def _evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder")
    p.add_argument("--split", choices=("valid", "train"), default="valid")
    p.add_argument("--folder", help="evaluate a folder laid out <label>/*.jpg instead")
    p.add_argument("--tta", action="store_true", help="average with horizontally flipped images")
    p.add_argument("--bs", type=limited("bs"), default=64, help="batch size (default: 64)")
    p.add_argument("--test-size", type=int, help="evaluate at this size (default: the run's "
                   "--test-size, else its --size)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def _predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="run folder or .safetensors file")
    p.add_argument("images", nargs="*", help="image files or folders")
    p.add_argument("--sample", action="store_true", help="also write one validation digit per "
                   "class to digits-samples/ and predict them (runs trained on --data digits)")
    p.add_argument("--top", "-k", type=at_least(1), default=3, help="how many classes to show (default: 3)")
    p.add_argument("--tta", action="store_true", help="average with horizontally flipped images")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--config", help="config.toml for a bare .safetensors file")


def _export(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder or .safetensors file")
    p.add_argument("--format", choices=("onnx", "safetensors", "timm", "fastai"), default="onnx",
                   help="timm/fastai: the weights in timm's names (resnet18d, ...) or fastai's "
                   "(xresnet18, ...)")
    p.add_argument("--out", help="output file (onnx, timm, fastai: .safetensors or .pth) or "
                   "folder (safetensors)")


def _summary(p: argparse.ArgumentParser) -> None:
    p.add_argument("arch", nargs="?", help="architecture name")
    p.add_argument("--arch", dest="arch_flag", metavar="ARCH",
                   help="the same, spelled as train and lr-find spell it")
    p.add_argument("--size", type=limited("size"), default=128, help="input size (default: 128)")
    p.add_argument("--c-in", type=limited("c_in"), default=3, help="input channels (default: 3)")
    p.add_argument("--classes", type=limited("classes"), default=10, help="outputs (default: 10)")
    p.add_argument("--list", action="store_true", help="list the architectures")


def _reproduce(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=("chapter14",), help="what to reproduce")
    p.add_argument("--only", help="one experiment (see the list printed by --only help)")
    p.add_argument("--quick", action="store_true", help="a few hundred images, 1 epoch (CI)")
    p.add_argument("--data", help="Imagenette folder (default: the named imagenette-160)")
    p.add_argument("--out", default="runs/reproduce-chapter14", help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars or tables")


def _bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="shorter timings")
    p.add_argument("--device", type=limited("device", str), default="auto",
                   help="auto, cpu, cuda or cuda:N")


def _recipes(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show this recipe's settings")


def _report(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder")
    p.add_argument("--out", help="output file (default: <run>/report.html)")


def _own(module: str) -> Callable[[argparse.ArgumentParser], None]:
    """A command whose module adds its own arguments (`add_arguments`; it imports no torch)."""
    return lambda p: importlib.import_module(f"resnette.commands.{module}").add_arguments(p)


# each command: its one-line help and what adds its arguments (the module that runs it: COMMANDS)
ARGUMENTS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "train": ("train a model into a run folder", _training("train")),
    "lr-find": ("run the learning rate finder", _training("lr-find")),
    "evaluate": ("accuracy, top-5, per-class accuracy, confusion matrix", _evaluate),
    "predict": ("class names and probabilities for images", _predict),
    "export": ("export a trained model as ONNX or safetensors + config", _export),
    "summary": ("layer table: output shapes, parameters, multiply-adds", _summary),
    "reproduce": ("rerun the chapter's experiments beside its numbers", _reproduce),
    "bench": ("data, model and end-to-end throughput of this machine", _bench),
    "recipes": ("the named training recipes (--recipe NAME)", _recipes),
    "report": ("one self-contained HTML page about a run", _report),
    "runs": ("list, compare and plot run folders (reads only)", _own("runs")),
    "cache": ("the decoded-image cache: list its entries, or clear them", _own("cache")),
}


def warm_up(module: str) -> threading.Thread:
    """Import `module` in a background thread. Training's optimizer imports torch._dynamo on
    first use (1.4-2.8 s on 2 cores): imported here, after the command's own imports, it
    overlaps the data and model building. Never beside --compile (or a --config that may set
    it): torch.compile imports it too, and two threads importing it at once: _DeadlockError."""
    def load() -> None:
        try:
            importlib.import_module(module)
        except Exception:   # the main thread imports it again and says what is wrong
            pass
    thread = threading.Thread(target=load, name=f"import {module}", daemon=True)
    thread.start()
    return thread


def command_in(argv: Sequence[str]) -> str:
    """The command word of `argv` ("" when there is none yet, as in `resnette --help`): the
    top-level parser has no option that takes a value, so it is the first positional."""
    return next((a for a in argv if not a.startswith("-")), "")


def _show_warning(message: Warning | str, *_: Any, **__: Any) -> None:
    """Python's warning hook while `main` runs: the CLI's own line (display.warning_line)."""
    try:
        sys.stderr.write(warning_line(message) + "\n")
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):   # None (closed at start), EPIPE, closed
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its Python warnings are `warning: ...` lines, for this call only
    (catch_warnings restores the hook: importing resnette changes nothing for a library)."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    # Names are shown through display.term (control characters escaped); a byte that is not
    # UTF-8 and slips past it is never a crash: kept raw on stdout, \\xNN on stderr.
    for stream, errors in ((sys.stdout, "surrogateescape"), (sys.stderr, "backslashreplace")):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors=errors)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(command_in(argv)).parse_args(argv)
    try:
        module = importlib.import_module(f"resnette.commands.{COMMANDS[args.command]}")
        if args.command in ("train", "lr-find") and not {"--compile", "--config"} & set(argv):
            warm_up("torch._dynamo")
        module.main(args)
    except ResnetteError as e:
        print(f"error: {term(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `resnette predict ... | head`: the reader left, that is fine
        sys.stdout = null_stream()
        return 0
    except OSError as e:   # the system refused (name too long, no permission, I/O): one line
        if e.errno is None:
            raise
        print(f"error: {term(os_error_line(e))}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:   # out of memory outside the guarded train step
        line = out_of_memory_line(args.command, e)
        if line is None:
            raise
        print(f"error: {term(line)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
