"""`load_learner` reads learner.toml and model.safetensors from outside: a class list that
does not fit the model's outputs, and weights no trained model holds, are refused in one
line naming the file (not an IndexError at the first prediction, not NaN predictions)."""
import tomllib

import pytest
import torch
from hypothesis import given, settings, strategies as st
from safetensors.torch import load_file, save_file

from fakes import FakeDataLoaders
from resnette.models import create_model
from resnette.train import Learner, load_learner
from resnette.train.export import _toml
from resnette.utils import ResnetteError


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    learn = Learner(FakeDataLoaders(), create_model("simple_cnn", n_out=3), quiet=True)
    return learn.export(tmp_path_factory.mktemp("exp") / "exported")


def copy(exported, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for f in exported.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    return folder


def test_the_export_loads_as_written(exported):
    assert load_learner(exported).dls.vocab == ["class0", "class1", "class2"]


@settings(max_examples=12, deadline=None, derandomize=True)
@given(n=st.integers(1, 8).filter(lambda n: n != 3))
def test_a_class_list_that_does_not_fit_the_outputs_is_refused(exported, tmp_path_factory, n):
    folder = copy(exported, tmp_path_factory.mktemp("c"))
    info = tomllib.loads((folder / "learner.toml").read_text())
    info["data"]["vocab"] = info["data"]["names"] = [f"k{i}" for i in range(n)]
    (folder / "learner.toml").write_text(_toml(info))
    with pytest.raises(ResnetteError) as e:
        load_learner(folder)
    line = str(e.value)
    assert "\n" not in line and str(folder / "learner.toml") in line
    assert f"{n} class names for a model with 3 outputs" in line


@pytest.mark.parametrize("change,words", [
    (lambda i: i["data"].update(names=["a"]), "'names' must be a list of 3"),
    (lambda i: i["data"].update(std=[0.0, 1.0, 1.0]), "'std' must be positive"),
    (lambda i: i["data"].update(size=0), "size must be a positive"),
    (lambda i: i.pop("arch"), "[arch] must name"),
    (lambda i: i["learner"].update(metrics="accuracy"), "metrics must be a list"),
])
def test_other_impossible_learner_tomls_are_one_line(exported, tmp_path, change, words):
    folder = copy(exported, tmp_path)
    info = tomllib.loads((folder / "learner.toml").read_text())
    change(info)
    (folder / "learner.toml").write_text(_toml(info))
    with pytest.raises(ResnetteError, match="learner.toml is damaged") as e:
        load_learner(folder)
    assert words in str(e.value)


@pytest.mark.parametrize("value,dtype,words", [
    (float("nan"), torch.float32, "holds NaN"), (1e30, torch.float32, "beyond"),
    (1, torch.int64, "int64, not real floating point"),
    (1, torch.complex64, "complex64, not real floating point")])
def test_weights_no_trained_model_holds_are_refused(exported, tmp_path, value, dtype, words):
    folder = copy(exported, tmp_path)
    weights = load_file(str(folder / "model.safetensors"))
    key = next(k for k, v in weights.items() if v.is_floating_point())
    weights[key] = torch.full(weights[key].shape, value, dtype=dtype)
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(ResnetteError) as e:
        load_learner(folder)
    assert str(folder / "model.safetensors") in str(e.value) and words in str(e.value)


def test_learn_load_refuses_nan_optimizer_state_and_leaves_the_learner_as_it_was(tmp_path):
    torch.manual_seed(0)
    # fp32: the test is about load's checks; simple_cnn in bf16 on these 16 px fakes can reach a
    # NaN loss in its first epoch (seen on an AMX Xeon, issue 25's note), which is not this test
    learn = Learner(FakeDataLoaders(n_train=32, n_valid=16), create_model("simple_cnn", n_out=3),
                    quiet=True, run_dir=tmp_path / "run", precision="fp32")
    learn.fit(1, 1e-3)
    path = learn.save("one")
    tensors = load_file(str(path))
    key = next(k for k in tensors if k.startswith("opt.") and tensors[k].ndim > 0)
    tensors[key] = tensors[key] * float("nan")
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    save_file(tensors, str(path), metadata=meta)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(ResnetteError, match=r"one.safetensors: its optimizer state holds NaN"):
        learn.load("one")
    assert all(torch.equal(v, before[k]) for k, v in learn.model.state_dict().items())
    learn.load("one", with_opt=False)   # the weights alone are fine
