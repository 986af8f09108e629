"""`resnette reproduce chapter14 --quick` and `resnette bench`, small enough for CI."""
import subprocess
import sys
from pathlib import Path

import re

import pytest

from resnette.commands.reproduce import markdown, names
from resnette.commands.bench import (bench_table, inference_rate, loader_rate, synthetic_data,
                                     train_rate)
from resnette.models import create_model
from resnette.train.precision import resolve
from resnette.utils import ResnetteError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette2-224sq"


def test_every_chapter_experiment_and_further_research_is_listed():
    assert {"plain", "resblock", "resblock2", "xresnet18", "xresnet50", "lr_find", "mnist_pool",
            "mnist_flatten", "basic18", "bottleneck18", "no_smoothing",
            "label_smoothing"} == set(names())


@pytest.mark.skipif(not DATA.is_dir(), reason="shared Imagenette not present")
def test_reproduce_quick_writes_the_table_beside_the_book(tmp_path):
    pytest.importorskip("sklearn")
    proc = subprocess.run(
        [sys.executable, "-m", "resnette", "reproduce", "chapter14", "--quick", "--quiet",
         "--only", "plain,lr_find", "--data", str(DATA), "--out", "out"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (tmp_path / "out" / "chapter14.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 3  # header + two experiments
    assert "| plain 5-block net | 1 | 32 |" in table and "65.9%" in table
    assert "suggested lr (valley)" in table and (tmp_path / "out" / "lr_find.png").is_file()
    assert table in proc.stdout
    # the quick subset is links to a few images per class, never a copy of the data
    links = list((tmp_path / "out" / "quick-data").rglob("*.JPEG"))
    assert len(links) == 150 and all(p.is_symlink() for p in links)


def test_unknown_experiment_names_the_valid_ones(capsys):
    from resnette.cli import main
    assert main(["reproduce", "chapter14", "--only", "resnet9", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "resnet9" in err and "xresnet50" in err


def test_markdown_puts_ours_beside_the_book():
    from resnette.commands.reproduce import experiments
    exp = experiments()[3]
    exp.results = {"accuracy": 0.80, "seconds": 123.4, "epochs": 5, "size": 128}
    assert "| XResNet-18 | 5 | 128 | 80.0% | 75.7% | 123 s | 13 s |" in markdown([exp], quick=False)


def test_loader_rate_counts_every_image():
    dls = synthetic_data(40, presize=40, size=32, bs=8, device="cpu")
    assert dls.train.n == 32 and loader_rate(dls.train) > 0


def test_bench_table_has_every_stage():
    table = bench_table(quick=True, arch="simple_cnn")
    for stage in ("| data |", "| model |", "| end to end |"):
        assert stage in table
    assert "images/s" in table and "GFLOP/s" in table
    chosen = resolve("auto")   # one rule: the model rows train in what "auto" means
    layout = "channels-last" if chosen.channels_last else "NCHW"
    assert f"training step ({chosen.precision}, {layout}, bs" in table
    assert f"inference ({chosen.precision}, bs" in table
    share = re.search(rf"step's share of the {chosen.precision} matrix-product rate \| (\d+)% \|", table)
    assert share and 0 <= int(share[1]) <= 100, table


def test_bench_rates_take_every_precision_choice_as_resolve_does():
    model = create_model("simple_cnn", n_out=4)
    # "auto" used to fail inside autocast ("unknown precision 'auto'")
    assert train_rate(model, bs=4, size=32, precision="auto", steps=1, warmup=0) > 0
    assert inference_rate(model, bs=4, size=32, precision="auto", steps=1, warmup=0) > 0
    with pytest.raises(ResnetteError, match="fp16 needs a CUDA GPU"):   # resolve's refusal
        train_rate(model, bs=4, size=32, precision="fp16", device="cpu")


def test_percentages_and_seconds_follow_the_display_rule():
    from resnette.commands.reproduce import experiments
    exp = experiments()[7]
    exp.results = {"accuracy": 0.98765, "seconds": 9.96, "epochs": 5, "size": 32}
    row = next(line for line in markdown([exp], quick=False).splitlines() if exp.title in line)
    assert row.endswith("| 98.8% |  | 10.0 s |  |")   # under 10 s: one decimal, as display says
