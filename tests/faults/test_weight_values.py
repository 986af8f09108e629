"""Weights that load but that no trained model holds (NaN, 1e30, int64, complex), in the files
`--init-from` and `--resume` read: one line naming the file before anything is written, not
"loss became NaN; lower the learning rate" epochs later (models/weights.py)."""
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import copy_run, digests, one_error_line, train_args
from resnette.cli import main

BAD = [(float("nan"), torch.float32, "holds NaN"), (1e30, torch.float32, "beyond the 1e+06"),
       (3, torch.int64, "int64, not real floating point"),
       (1, torch.complex64, "complex64, not real floating point")]


def contents(folder) -> dict[str, str]:
    """Every file's digest but the lock's (created and removed by its own rules)."""
    return {k: v for k, v in digests(folder).items() if k != ".lock"}


def in_process(capsys, *argv) -> str:
    assert main([str(a) for a in argv]) == 2
    return one_error_line(capsys.readouterr().err)


def spoil(tensors: dict, value, dtype) -> str:
    key = next(k for k, v in tensors.items() if v.is_floating_point() and v.ndim > 1)
    tensors[key] = torch.full(tensors[key].shape, value, dtype=dtype)
    return key


@pytest.mark.parametrize("value,dtype,words", BAD, ids=["nan", "1e30", "int64", "complex"])
def test_init_from_refuses_weights_no_model_holds(world, baseline, cwd, capsys, monkeypatch,
                                                  value, dtype, words):
    monkeypatch.chdir(cwd)
    folder = copy_run(baseline["run"], cwd, "src")
    for name in ("best.safetensors", "model.safetensors"):
        if (folder / name).exists():
            tensors = load_file(str(folder / name))
            key = spoil(tensors, value, dtype)
            save_file(tensors, str(folder / name), metadata={"format": "pt"})
    before = contents(folder)
    line = in_process(capsys, *train_args(world["data"], "new", "--init-from", str(folder)))
    assert "refusing the weights in" in line and ".safetensors" in line and key in line, line
    assert words in line and "learning rate" not in line
    image = next((world["data"] / "valid" / "a").glob("*.png"))
    for argv in (["predict", folder, image], ["evaluate", folder]):   # no NaN% predictions
        line = in_process(capsys, *argv)   # the weights file named, never config.toml (probe 8)
        assert "refusing the weights in" in line and "config.toml" not in line, line
    assert contents(folder) == before
    assert not (cwd / "runs" / "new").exists()


@pytest.mark.parametrize("part", ["model", "optimizer"])
def test_resume_refuses_a_checkpoint_holding_nan(baseline, cwd, capsys, monkeypatch, part):
    monkeypatch.chdir(cwd)
    folder = copy_run(baseline["run"], cwd, "r")
    state = torch.load(folder / "checkpoint.pt", weights_only=True)
    if part == "model":
        spoil(state["model"], float("nan"), torch.float32)
    else:
        momenta = next(iter(state["optimizer"]["state"].values()))
        key = next(k for k, v in momenta.items() if torch.is_tensor(v) and v.ndim > 0)
        momenta[key] = momenta[key] * float("nan")
    torch.save(state, folder / "checkpoint.pt")
    before = contents(folder)
    line = in_process(capsys, "train", "--resume", "--name", "r", "--quiet")
    assert "checkpoint.pt" in line and "NaN" in line, line
    assert "learning rate" not in line
    assert contents(folder) == before
