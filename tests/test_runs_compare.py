"""`resnette runs` (issue 19 #1): the table's numbers are metrics.csv's, sorting and filtering,
diff, the overlaid curves and the HTML page; it reads only, and a damaged run folder is one
line, never a crash (resnette/run/compare*.py, resnette/commands/runs.py)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resnette.cli import main
from resnette.display import show
from resnette.run.compare import load_runs, training_holder
from resnette.run.compare_select import select
from resnette.run.compare_view import plot_runs, table
from resnette.run.lock import lock_run

NAN = float("nan")


def make_run(root: Path, name: str, *, data="digits", arch="resblock_cnn", lr=0.01, epochs=3,
             rows=((1.2, 1.1, 0.61, 0.9, 3.25), (0.7, 0.6, 0.8125, 0.97, 2.5),
                   (0.4, 0.35, 0.9333333333333333, 1.0, 2.75)), model=True) -> Path:
    """A run folder as training leaves it (config.toml, metrics.csv, weights), trained by hand."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.toml").write_text(f'data = "{data}"\nname = "{name}"\narch = "{arch}"\n'
                                     f"size = 32\nepochs = {epochs}\nlr = {lr}\nmixup = 0.0\n")
    lines = ["epoch,train_loss,valid_loss,accuracy,top_k_accuracy,time"]
    lines += [",".join(map(str, (i, *r))) for i, r in enumerate(rows)]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    if model:
        (run / "model.safetensors").write_bytes(b"weights")
    return run


def tree_hash(root: Path) -> str:
    """Every name, byte and modification time under `root`."""
    h = hashlib.sha256()
    for dirpath, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(dirs + files):
            p = Path(dirpath) / name
            st = p.lstat()
            h.update(f"{p.relative_to(root)}|{st.st_mtime_ns}|{st.st_mode}".encode())
            if p.is_file():
                h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "runs"
    make_run(root, "small", lr=0.01)
    make_run(root, "big", arch="xresnet18", lr=0.003,
             rows=((1.0, 0.9, 0.7, 0.95, 10.0), (0.5, 0.45, 0.875, 0.99, 11.5),
                   (0.3, 0.25, 0.96875, 1.0, 12.0)))
    make_run(root, "cut", arch="xresnet18", data="imagenette-160", epochs=5,
             rows=((1.5, NAN, NAN, NAN, 4.0), (1.1, 0.9, 0.5, 0.8, 4.5)))
    return root


def test_the_table_numbers_are_metrics_csv(runs, capsys):
    by_name = {s.name: s for s in load_runs([runs])}
    for name, s in by_name.items():
        cells = [line.split(",") for line in (runs / name / "metrics.csv").read_text().split()]
        last_validated = [r for r in cells[1:] if r[3] != "nan"][-1]
        assert s.accuracy == float(last_validated[3]) and s.top_k_accuracy == float(last_validated[4])
        assert s.valid_loss == float(last_validated[2])
        assert s.wall == sum(float(r[5]) for r in cells[1:])
        assert s.done == len(cells) - 1
    assert main(["runs", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["small"]["accuracy"] == 0.9333333333333333 and rows["big"]["wall_s"] == 33.5
    assert main(["runs"]) == 0
    text = capsys.readouterr().out.splitlines()
    small = next(line for line in text if line.startswith("small"))
    assert show("accuracy", 0.9333333333333333) in small and "3/3" in small and "finished" in small
    cut = next(line for line in text if line.startswith("cut"))
    assert "2/5" in cut and "interrupted" in cut and "0.500000" in cut


def test_damaged_folders_are_one_line_each_and_the_rest_is_listed(runs, capsys):
    make_run(runs, "bad-toml")
    (runs / "bad-toml" / "config.toml").write_text("lr = = 3\n")
    make_run(runs, "binary-metrics")
    (runs / "binary-metrics" / "metrics.csv").write_bytes(b"\x00\xff\xfe garbage \x00\n\x89PNG")
    make_run(runs, "ragged")
    (runs / "ragged" / "metrics.csv").write_text("epoch,train_loss,accuracy\n0,1.0,0.5\n1,0.4\n")
    make_run(runs, "not-utf8")
    (runs / "not-utf8" / "config.toml").write_bytes(b'data = "caf\xe9"\n')
    (runs / "no-config").mkdir()
    (runs / "no-config" / "checkpoint.pt").write_bytes(b"x")
    make_run(runs, "config-is-a-folder")
    (runs / "config-is-a-folder" / "config.toml").unlink()
    (runs / "config-is-a-folder" / "config.toml").mkdir()
    (runs / "not-a-run").mkdir()                       # no run files at all: not listed
    assert main(["runs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 + 3 + 6
    damaged = [line for line in out if "damaged" in line]
    assert len(damaged) == 6 and not any(line.startswith("not-a-run") for line in out)
    assert any("no config.toml" in line for line in damaged)
    assert any(line.startswith("ragged") and "metrics.csv" in line for line in damaged)
    assert sum(line.startswith(("small", "big", "cut")) for line in out) == 3


def test_listing_and_diff_change_no_run(runs, capsys):
    with lock_run(runs / "big", "resnette evaluate", shared=True):
        before = tree_hash(runs)   # a run being evaluated: its lock file is there
        for argv in (["runs"], ["runs", "--json", "--sort", "acc"], ["runs", "runs/*"],
                     ["runs", "diff", "small", "big"], ["runs", "--where", "arch=x*"]):
            assert main(argv) == 0, argv
        assert tree_hash(runs) == before
    capsys.readouterr()


def test_a_run_being_trained_is_training_now_and_the_lock_is_only_looked_at(runs, capsys):
    lock = lock_run(runs / "cut", "resnette train")
    try:
        assert training_holder(runs / "cut") == f"{os.getpid()} (resnette train)"
        assert main(["runs", "--where", "state=training now"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert len(out) == 2 and out[1].startswith("cut")
        assert lock.fd is not None   # still ours: nothing took it
    finally:
        lock.release()
    # a lock file whose process is gone (kill -9 leaves it) is not a training
    (runs / "cut" / ".lock").write_text("999999999 (resnette train)\n")
    assert training_holder(runs / "cut") == ""
    assert {s.name: s.state for s in load_runs([runs])}["cut"] == "interrupted"


def test_sort_and_where(runs, capsys):
    all_runs = load_runs([runs])
    assert [s.name for s in select(all_runs, sort="acc")] == ["big", "small", "cut"]
    assert [s.name for s in select(all_runs, sort="acc", reverse=True)] == ["cut", "small", "big"]
    assert [s.name for s in select(all_runs, sort="time")] == ["cut", "small", "big"]
    assert [s.name for s in select(all_runs, sort="lr")] == ["big", "cut", "small"]
    assert {s.name for s in select(all_runs, ["arch=xresnet18"])} == {"big", "cut"}
    assert [s.name for s in select(all_runs, ["arch=xresnet18", "data=imagenette*"])] == ["cut"]
    assert {s.name for s in select(all_runs, ["acc>=0.9", "lr<0.005"])} == {"big"}
    assert {s.name for s in select(all_runs, ["state!=finished"])} == {"cut"}
    assert main(["runs", "--where", "arch=xresnet18", "--where", "epochs>2",
                 "--sort", "acc"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[1:]] == ["big"]
    assert main(["runs", "--where", "lr"]) == 2
    assert "is not KEY=VALUE" in capsys.readouterr().err
    assert main(["runs", "--sort", "accuracy"]) == 0 and main(["runs", "--sort", "acuracy"]) == 2
    assert "no run has a column or setting 'acuracy'; did you mean 'accuracy'?" in \
        capsys.readouterr().err
    assert main(["runs", "--where", "mixupp=0"]) == 2


def test_diff_names_the_settings_that_differ_and_the_metric_deltas(runs, capsys):
    assert main(["runs", "diff", "small", "runs/big"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["arch"][1:] == ["resblock_cnn", "xresnet18"]
    assert lines["lr"][1:] == ["1.00e-02", "3.00e-03"]
    assert "data" not in lines and "name" not in lines and "size" not in lines
    assert lines["accuracy"][1:] == ["0.933333", "0.968750", f"+{0.96875 - 0.9333333333333333:.6f}"]
    assert lines["valid_loss"][3] == f"-{0.35 - 0.25:.6f}"
    assert main(["runs", "diff", "small"]) == 2
    assert "compares two runs" in capsys.readouterr().err


@pytest.mark.slow   # matplotlib: seconds on a busy 2-core machine
def test_plot_and_html_draw_every_run_and_change_none(runs, tmp_path, capsys):
    before = tree_hash(runs)
    fig = plot_runs([runs / "small", runs / "big", runs / "cut"], tmp_path / "curves.png")
    loss, acc = fig.axes
    assert len(acc.lines) == 3 and len(loss.lines) == 6
    cut_acc = next(line for line in acc.lines if line.get_label() == "cut")
    assert list(cut_acc.get_xdata()) == [1.0] and list(cut_acc.get_ydata()) == [0.5]
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["runs", "plot", "small", "big", "-o", str(tmp_path / "c.png")]) == 0
    assert main(["runs", "html", "-o", str(tmp_path / "page.html")]) == 0
    assert tree_hash(runs) == before
    assert "2 run(s) drawn" in capsys.readouterr().out
    page = (tmp_path / "page.html").read_text()
    assert all(name in page for name in ("small", "big", "cut"))
    assert "data:image/png;base64," in page and "Settings that differ" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert show("accuracy", 0.96875) in page


def test_no_runs_is_a_message_not_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["runs"]) == 0
    assert "no runs in runs/" in capsys.readouterr().err
    assert main(["runs", "nowhere"]) == 2
    assert table([]) .startswith("name")


@pytest.mark.slow
def test_runs_imports_no_torch_and_reads_a_real_training_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    train = subprocess.run([sys.executable, "-m", "resnette", "train", "--data", "digits",
                            "--epochs", "2", "--name", "real", "--quiet"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-2000:]
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "resnette", "runs", "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
               if line.startswith("import time:")}
    assert "resnette.run.compare" in modules
    assert not {m for m in modules if m.split(".")[0] in ("torch", "numpy")}
    (row,) = json.loads(proc.stdout)
    cells = [line.split(",") for line in (tmp_path / "runs/real/metrics.csv").read_text().split()]
    assert row["accuracy"] == float(cells[-1][cells[0].index("accuracy")])
    assert row["state"] == "finished" and row["epochs"] == 2


def test_a_hidden_run_is_listed_but_not_one_moved_aside_nor_hidden_folders_contents(tmp_path):
    """`--name .x` makes a run like any other; a run `--overwrite` has moved aside for the
    moment (its marker) is not the user's to see, and .git-like folders are not searched."""
    from resnette.run.aside import ASIDE_MARKER
    root = tmp_path / "runs"
    make_run(root, "shown")
    make_run(root, ".hidden")
    make_run(root, ".shown.replaced-1")
    (root / ".shown.replaced-1" / ASIDE_MARKER).write_text("")
    make_run(root / ".git", "inside")            # a run-like folder under a hidden non-run
    make_run(root / "group", "nested")           # an ordinary group folder is still searched
    assert sorted(s.name for s in load_runs([root])) == [".hidden", "group/nested", "shown"]
