"""metrics.csv read back from a run must hold numbers a training run can write (runfiles.
metrics_problem): epochs in order without repeats, losses finite and not negative (NaN where
not measured), accuracy, error rate and top-k in [0, 1], times finite. Anything else is a
damaged run in `resnette runs` and one line from `resnette report`, never a ranking by an
accuracy of 1.5 or a traceback on `time = inf`."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from resnette.cli import main
from resnette.run.compare import summarize
from resnette.runfiles import metrics_problem, read_metrics

NAN = float("nan")
COLUMNS = ["epoch", "train_loss", "valid_loss", "accuracy", "error_rate", "top_k_accuracy",
           "time"]
IMPOSSIBLE = {   # column -> values no training run writes there
    "train_loss": [-0.1, math.inf, -math.inf], "valid_loss": [-1e-9, math.inf],
    "accuracy": [1.5, -0.01, math.inf, 100.0], "error_rate": [1.01, -1.0],
    "top_k_accuracy": [2.0, -math.inf], "time": [math.inf, -3.0, NAN],
}

loss = st.floats(0, 1e3)
fraction = st.floats(0, 1)


@st.composite
def possible(draw) -> dict[str, list]:
    """metrics.csv's columns as a training run writes them (validated every `every` epochs)."""
    n, every = draw(st.integers(1, 8)), draw(st.integers(1, 3))
    valid = [i == n - 1 or (i + 1) % every == 0 for i in range(n)]
    return {"epoch": list(range(n)), "train_loss": [draw(loss) for _ in range(n)],
            "valid_loss": [draw(loss) if v else NAN for v in valid],
            "accuracy": [draw(fraction) if v else NAN for v in valid],
            "error_rate": [draw(fraction) if v else "" for v in valid],
            "top_k_accuracy": [draw(fraction) if v else NAN for v in valid],
            "time": [draw(st.floats(0, 1e5)) for _ in range(n)]}


def write(folder: Path, columns: dict[str, list]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text('data = "digits"\narch = "simple_cnn"\nsize = 32\n'
                                        "epochs = 8\n")
    rows = zip(*columns.values())
    text = ",".join(columns) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    (folder / "metrics.csv").write_text(text)
    return folder / "metrics.csv"


@settings(max_examples=60, deadline=None, derandomize=True)
@given(columns=possible())
def test_what_training_writes_is_possible_and_reads_back(tmp_path_factory, columns):
    assert metrics_problem(columns) is None
    path = write(tmp_path_factory.mktemp("r"), columns)
    assert metrics_problem(read_metrics(path)) is None


@settings(max_examples=80, deadline=None, derandomize=True)
@given(columns=possible(), data=st.data())
def test_one_impossible_number_anywhere_is_found_and_named(columns, data):
    key = data.draw(st.sampled_from(sorted(IMPOSSIBLE)))
    value = data.draw(st.sampled_from(IMPOSSIBLE[key]))
    columns[key][data.draw(st.integers(0, len(columns[key]) - 1))] = value
    why = metrics_problem(columns)
    assert why is not None and f"'{key}' column holds {value!r}" in why


@settings(max_examples=40, deadline=None, derandomize=True)
@given(columns=possible(), data=st.data())
def test_epochs_out_of_order_or_repeated_are_found(columns, data):
    n = len(columns["epoch"])
    if n < 2:
        columns["epoch"] = [-1]
    else:
        i = data.draw(st.integers(1, n - 1))
        columns["epoch"][i] = data.draw(st.integers(0, columns["epoch"][i - 1]))
    assert metrics_problem(columns) is not None


IMPOSSIBLE_RUNS = {"acc-1.5": ("accuracy", 1.5), "loss-neg": ("valid_loss", -2.0),
                   "time-inf": ("time", math.inf), "epochs": ("epoch", 0)}


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = {"epoch": [0, 1], "train_loss": [0.9, 0.5], "valid_loss": [0.8, 0.4],
            "accuracy": [0.6, 0.75], "time": [2.5, 2.25]}
    write(tmp_path / "runs" / "good", base)
    for name, (key, value) in IMPOSSIBLE_RUNS.items():
        write(tmp_path / "runs" / name, {**base, key: [base[key][0], value]})
    return tmp_path / "runs"


def test_runs_shows_impossible_numbers_as_damaged(runs, capsys):
    for name, (key, _) in IMPOSSIBLE_RUNS.items():
        s = summarize(runs / name)
        words = "epochs are not in order" if key == "epoch" else f"'{key}' column"
        assert s.state == "damaged" and words in s.problem, (name, s.problem)
    assert summarize(runs / "good").state != "damaged"
    assert main(["runs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sum("damaged" in line for line in out) == len(IMPOSSIBLE_RUNS)
    assert not any("150" in line for line in out)   # an accuracy of 1.5 is never shown


@pytest.mark.parametrize("name", sorted(IMPOSSIBLE_RUNS))
def test_report_refuses_impossible_numbers_in_one_line(runs, capsys, name):
    """Before: `time = inf` ended `report` in a traceback, an accuracy of 1.5 was drawn."""
    assert main(["report", str(runs / name)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "metrics.csv is damaged" in err[0] and IMPOSSIBLE_RUNS[name][0] in err[0], err
