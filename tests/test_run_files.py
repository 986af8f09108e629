"""A run folder's files, read back by every command (issue 18, classes 3, 4, 7, 11).

- Recovery is a property of the run folder: predict, evaluate, export, report and --resume
  each put back a run that a killed `train --overwrite` moved aside, or say where it is.
- Class names are compared in NFC: `evaluate --folder` of NFD (Mac) names works.
- Every file read from a run folder is checked: a damaged one is one `error:` line naming it.
- `evaluate --split train` counts every image, and only the run's own evaluation (validation,
  its size, no TTA) is evaluation.json: the others are kept in evaluations/<what>.json.
One tiny run is trained once (in-process, plots not drawn); each test works on a copy.
"""
import hashlib
import json
import shutil
import unicodedata

import numpy as np
import pytest

from fakes import image_folder
from resnette.cli import main
from resnette.commands.train import train
from resnette.run.config import make_config
from resnette.run.lock import lock_run

CAFE = unicodedata.normalize("NFC", "café")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    top = tmp_path_factory.mktemp("runfiles")
    data = image_folder(top / "pets", 7, 3, classes=(CAFE, "dog"), size=32, levels=(60, 190))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RESNETTE_HOME", str(top / "home"))
        cfg = make_config({"data": str(data), "arch": "simple_cnn", "size": 32, "presize": 32,
                           "bs": 4, "epochs": 2, "lr": 1e-2, "device": "cpu",
                           "precision": "fp32", "run_dir": str(top / "base")})
        train(cfg, quiet=True, draw="none")
    return {"run": top / "base", "data": data, "home": top / "home"}


@pytest.fixture
def run(trained, tmp_path, monkeypatch):
    """A copy of the trained run in tmp_path/runs/r, the cwd."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RESNETTE_HOME", str(trained["home"]))
    dst = tmp_path / "runs" / "r"
    shutil.copytree(trained["run"], dst)
    return dst


def digests(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    return errors[0]


def commands(run, trained, tmp_path):
    image = str(next((trained["data"] / "valid" / "dog").iterdir()))
    return {
        "predict": ["predict", str(run), image],
        "evaluate": ["evaluate", str(run)],
        "export": ["export", str(run), "--format", "safetensors", "--out", str(tmp_path / "ex")],
        "report": ["report", str(run)],
        "resume": ["train", "--resume", "--run-dir", str(run), "--quiet"],
    }


# ---------------------------------------------------------------- 3: interrupted --overwrite

@pytest.mark.slow
@pytest.mark.parametrize("verb, new_folder", [("predict", True), ("evaluate", False),
                                              ("export", False), ("report", True),
                                              ("resume", False), ("predict", False)])
def test_every_command_puts_back_a_run_a_killed_overwrite_moved_aside(
        run, trained, tmp_path, capsys, verb, new_folder):
    """As a `kill -9` leaves it: the old run renamed to .r.replaced-<pid>, and the new folder
    holding config.toml (killed after the first writes) or not made yet (killed in between).
    Before: predict and evaluate said 'no weights', report drew the empty folder."""
    before = digests(run)
    aside = run.with_name(".r.replaced-4242")
    (run / ".resnette-aside").write_text("4242\n")   # what --overwrite writes before the move
    run.rename(aside)
    if new_folder:
        run.mkdir()
        (run / "config.toml").write_text((aside / "config.toml").read_text())
    assert main(commands(run, trained, tmp_path)[verb]) == 0
    assert "restored" in capsys.readouterr().err
    assert not aside.exists()
    after = digests(run)
    if verb in ("predict", "export"):   # they only read: the old run, byte for byte
        assert after == before
    else:                               # the old run's weights, config and classes are back
        assert all(after[k] == before[k] for k in ("model.safetensors", "classes.json"))


def test_a_running_overwrite_is_named_with_where_the_old_run_is(run, trained, tmp_path, capsys):
    aside = run.with_name(".r.replaced-4242")
    (run / ".resnette-aside").write_text("4242\n")   # what --overwrite writes before the move
    run.rename(aside)
    run.mkdir()
    with lock_run(aside, "resnette train"):   # the --overwrite still holds the old run
        for verb in ("predict", "evaluate", "report"):
            assert main(commands(run, trained, tmp_path)[verb]) == 2
            line = one_line(capsys)
            assert "is being replaced by `train --overwrite`" in line and str(aside) in line
    assert aside.is_dir()


# ---------------------------------------------------------------- 4: labels in NFC

def test_evaluate_folder_accepts_the_nfd_names_a_mac_copy_has(run, trained, tmp_path, capsys):
    folder = tmp_path / "mac"
    for label in (CAFE, "dog"):
        shutil.copytree(trained["data"] / "valid" / label,
                        folder / unicodedata.normalize("NFD", label))
    assert unicodedata.normalize("NFD", CAFE) in [p.name for p in folder.iterdir()]
    assert main(["evaluate", str(run), "--folder", str(folder), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["n"] == 6 and ev["per_class"][CAFE]["n"] == 3


# ---------------------------------------------------------------- 7: damaged run files

def _edit_json(**values):
    def edit(path):
        path.write_text(json.dumps({**json.loads(path.read_text()), **values}))
    return edit


DAMAGE = {   # file -> (how it is damaged, the commands that read it)
    "classes-not-json": ("classes.json", lambda p: p.write_text('{"vocab": ['), "not JSON"),
    "classes-a-list": ("classes.json", lambda p: p.write_text("[]"), "JSON object"),
    "classes-no-vocab": ("classes.json", _edit_json(vocab=None), "'vocab'"),
    "classes-std-zero": ("classes.json", _edit_json(std=[0.0, 0.2, 0.2]), "'std' must be positive"),
    "classes-std-nan": ("classes.json", _edit_json(std=[float("nan"), 0.2, 0.2]), "finite"),
    "classes-names-short": ("classes.json", _edit_json(names=["x"]), "'names'"),
    "classes-three-classes": ("classes.json",
                              _edit_json(vocab=["a", "b", "c"], names=["a", "b", "c"]), "classes"),
    "config-not-toml": ("config.toml", lambda p: p.write_text("size = = 3\n"), "not valid TOML"),
    "config-bad-size": ("config.toml", lambda p: p.write_text(
        p.read_text().replace("size = 32", "size = 5")), "'size'"),
    "config-binary": ("config.toml", lambda p: p.write_bytes(b"\xff\xfe\x00garbage"), "UTF-8"),
}


# each damage through two or three of the commands that read the file (every command
# several times), not the whole product: the fuzzer (tests/faults/test_fuzz*.py) draws more
CASES = [("classes-not-json", "predict"), ("classes-not-json", "resume"),
         ("classes-a-list", "evaluate"), ("classes-a-list", "report"),
         ("classes-no-vocab", "export"), ("classes-no-vocab", "resume"),
         ("classes-std-zero", "predict"), ("classes-std-zero", "evaluate"),
         ("classes-std-nan", "predict"), ("classes-std-nan", "export"),
         ("classes-names-short", "evaluate"), ("classes-three-classes", "predict"),
         ("classes-three-classes", "resume"), ("classes-three-classes", "report"),
         ("config-not-toml", "predict"), ("config-not-toml", "report"),
         ("config-not-toml", "resume"), ("config-bad-size", "evaluate"),
         ("config-bad-size", "export"), ("config-binary", "resume"), ("config-binary", "report")]


@pytest.mark.parametrize("case, verb", CASES)
def test_a_damaged_file_is_one_line_naming_it_and_nothing_changes(
        run, trained, tmp_path, capsys, case, verb):
    name, damage, words = DAMAGE[case]
    damage(run / name)
    before = digests(run)
    if case == "classes-three-classes" and verb == "report":   # it reads no weights: all fine
        assert main(commands(run, trained, tmp_path)[verb]) == 0
        return
    assert main(commands(run, trained, tmp_path)[verb]) == 2
    line = one_line(capsys)
    assert name in line and words in line, line
    assert digests(run) == before
    assert "nan%" not in capsys.readouterr().out


REPORT_DAMAGE = {
    "evaluation.json": [b"{oops", b"[]", b'{"n": 3, "accuracy": "high"}',
                        b'{"n": 3, "names": ["a"], "confusion": [[1, 2]]}'],
    "metrics.csv": [b"\x89PNG\x00\x00", b"epoch,train_loss\n0,0.5,0.7\n", b"epoch,loss\nx,0.5\n",
                    b"epoch,train_loss\n0,high\n"],
    "plots/top_losses.npz": [b"PK\x03\x04broken", b"not a zip"],
    "plots/augmented_batch.npz": [b""],
}


@pytest.mark.parametrize("name, content", [(n, c) for n, cs in REPORT_DAMAGE.items() for c in cs])
def test_report_names_a_damaged_evaluation_metrics_or_pixels_file(run, capsys, name, content):
    (run / name).write_bytes(content)
    before = digests(run)
    assert main(["report", str(run)]) == 2
    line = one_line(capsys)
    assert name.split("/")[-1] in line and "damaged" in line, line
    assert digests(run) == before


def test_evaluate_rewrites_a_damaged_evaluation_json(run, capsys):
    (run / "evaluation.json").write_text("{oops")
    assert main(["evaluate", str(run), "--json"]) == 0
    assert json.loads((run / "evaluation.json").read_text())["n"] == 6


# ---------------------------------------------------------------- 11: evaluations kept apart

@pytest.mark.slow
def test_evaluate_train_counts_every_image_and_keeps_the_runs_own_evaluation(run, capsys):
    own = (run / "evaluation.json").read_bytes()
    plots = digests(run / "plots")
    for bs in ("4", "64", "1"):   # 14 training images: 3 batches of 4 and a partial one
        assert main(["evaluate", str(run), "--split", "train", "--bs", bs, "--json"]) == 0
        ev = json.loads(capsys.readouterr().out)
        assert ev["n"] == 14 and sum(v["n"] for v in ev["per_class"].values()) == 14
    assert main(["evaluate", str(run), "--tta", "--json"]) == 0
    assert main(["evaluate", str(run), "--test-size", "48", "--json"]) == 0
    assert (run / "evaluation.json").read_bytes() == own
    assert digests(run / "plots") == plots
    kept = {p.name: json.loads(p.read_text()) for p in (run / "evaluations").iterdir()}
    assert set(kept) == {"train.json", "valid-tta.json", "valid-48px.json"}
    assert (kept["train.json"]["split"], kept["train.json"]["size"], kept["train.json"]["n"]) == \
        ("train", 32, 14)
    assert kept["valid-tta.json"]["tta"] is True and kept["valid-48px.json"]["size"] == 48
    capsys.readouterr()
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "accuracy on the validation set at 32 px" in page
    assert "the training set at 32 px" in page and "Other evaluations" in page
    assert "Confusion matrix on the validation set at 32 px" in page


# ---------------------------------------------------------------- --out onto a run's files

@pytest.mark.parametrize("argv", [
    ["report", "{run}", "--out", "{run}/config.toml"],
    ["report", "{run}", "--out", "{other}/metrics.csv"],
    ["export", "{run}", "--format", "onnx", "--out", "{run}/model.safetensors"],
    ["export", "{run}", "--format", "onnx", "--out", "{other}/plots/x.onnx"],
    ["export", "{run}", "--format", "safetensors", "--out", "{run}/plots"],
])
def test_an_out_inside_a_run_folder_never_writes_over_its_files(run, capsys, argv):
    """Found by hand (issue 18's own cases): before, `report --out runs/r/config.toml` and
    `export --out runs/r/model.safetensors` replaced the run's config and weights."""
    other = run.with_name("other")
    shutil.copytree(run, other)
    before = digests(run.parent)
    assert main([a.format(run=run, other=other) for a in argv]) == 2
    assert "is inside the run folder" in one_line(capsys)
    assert digests(run.parent) == before


def test_a_run_named_like_an_aside_or_a_backup_so_named_is_never_touched(run, trained, tmp_path,
                                                                        capsys):
    """Round-four probe: `recover` took any run called `.<name>.replaced-*` for a killed
    --overwrite's old run, and predict deleted it (or renamed it over the user's run). Only a
    folder holding .resnette-aside, written just before the move, is ever put back or dropped."""
    named = run.with_name(".r.replaced-998")          # a finished run the user named so
    shutil.copytree(run, named)
    before = digests(named)
    assert main(commands(run, trained, tmp_path)["predict"]) == 0
    assert "restored" not in capsys.readouterr().err
    assert digests(named) == before
