"""The command line answers at once (issue 19 #4): `resnette --version`, `--help`, `recipes`,
`runs` and `cache` import no torch (nor NumPy), checked in fresh interpreters by what they
load; the time itself is measured by benchmarks/startup.py (`--cli`)."""
import subprocess
import sys

import pytest




def imported(args: list[str], cwd=None) -> set[str]:
    """The modules a fresh `python -X importtime -m resnette ARGS` imported (its stderr)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "resnette", *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["recipes"], ["recipes", "fast"],
                                  ["runs"], ["cache"]], ids=" ".join)
def test_fast_commands_import_no_torch(args, tmp_path):
    modules = imported(args, cwd=tmp_path)   # an empty folder; RESNETTE_HOME: conftest's
    assert "resnette.cli" in modules   # the measurement sees our imports
    assert not {m for m in modules if m.split(".")[0] in ("torch", "numpy")}


def test_a_training_command_still_gets_all_its_flags():
    # only the command being run is described; train's flags come from TrainConfig (torch)
    from resnette.cli import build_parser
    args = build_parser("train").parse_args(["train", "--data", "digits", "--lr", "0.02"])
    assert (args.data, args.lr) == ("digits", 0.02)
    everything = build_parser()
    assert everything.parse_args(["summary", "--arch", "xresnet18"]).arch_flag == "xresnet18"
