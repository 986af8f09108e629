"""Weights read from a file are checked for their values (models/weights.py): a NaN, an
infinity, a value past 1e6, an integer, bool or complex tensor where the model holds floats,
or a float where it counts in integers, is refused in one line naming the file and the
tensor; everything a trained model can hold loads."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from resnette.models import create_model
from resnette.models.interop import from_format, to_format
from resnette.models.weights import MAX_ABS_WEIGHT, check_finite_state, check_weights
from resnette.train.checkpoints import check_compatible
from resnette.utils import ResnetteError

MODEL = create_model("simple_cnn", n_out=3)
FRESH = create_model("simple_cnn", n_out=3)   # loaded into by the tests, never checked against
OWN = MODEL.state_dict()
FLOAT_KEYS = sorted(k for k, v in OWN.items() if v.is_floating_point())
COUNT_KEYS = sorted(k for k, v in OWN.items() if not v.is_floating_point())
REAL = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
NOT_REAL = [torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64, torch.bool,
            torch.complex64, torch.complex128]
BAD_VALUES = [float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 2e6, -1.5e6]


def refused(weights, source="w.safetensors") -> str:
    with pytest.raises(ResnetteError) as e:
        check_compatible(MODEL, weights, source)
    line = str(e.value)
    assert "\n" not in line and source in line, line
    return line


def test_the_keys_split_into_floats_and_counts():
    assert FLOAT_KEYS and COUNT_KEYS   # simple_cnn has BatchNorm: num_batches_tracked counts
    assert all(k.endswith("num_batches_tracked") for k in COUNT_KEYS)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(key=st.sampled_from(FLOAT_KEYS), bad=st.sampled_from(BAD_VALUES),
       dtype=st.sampled_from(REAL), where=st.floats(0, 1, exclude_max=True))
def test_a_special_value_anywhere_in_any_float_tensor_is_refused(key, bad, dtype, where):
    weights = {k: v.clone() for k, v in OWN.items()}
    flat = weights[key].to(dtype).flatten()
    flat[int(where * flat.numel())] = bad          # 2e6 in float16 is already inf: still refused
    weights[key] = flat.reshape(OWN[key].shape)
    line = refused(weights)
    assert key in line
    assert ("NaN" in line) == (bad != bad)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(key=st.sampled_from(FLOAT_KEYS), dtype=st.sampled_from(NOT_REAL))
def test_integer_bool_and_complex_weights_are_refused_not_cast(key, dtype):
    weights = {k: v.clone() for k, v in OWN.items()}
    weights[key] = torch.ones(OWN[key].shape, dtype=dtype)
    line = refused(weights)
    assert key in line and str(dtype).removeprefix("torch.") in line
    assert "not real floating point" in line


@settings(max_examples=30, deadline=None, derandomize=True)
@given(key=st.sampled_from(COUNT_KEYS), dtype=st.sampled_from(REAL + [torch.complex64, torch.bool]))
def test_a_count_buffer_must_stay_an_integer(key, dtype):
    weights = {k: v.clone() for k, v in OWN.items()}
    weights[key] = torch.tensor(3, dtype=dtype)
    assert "integers" in refused(weights)


def test_a_negative_count_is_refused():
    weights = {k: v.clone() for k, v in OWN.items()}
    weights[COUNT_KEYS[0]] = torch.tensor(-1)
    assert "negative count" in refused(weights)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(dtype=st.sampled_from(REAL), scale=st.floats(0, MAX_ABS_WEIGHT),
       counts=st.integers(0, 2**40))
def test_every_value_a_trained_model_may_hold_loads(dtype, scale, counts):
    """Any real floating type, values up to the bound (the bound itself included), any count."""
    torch.manual_seed(0)
    scale = min(scale, torch.finfo(dtype).max)   # float16 holds nothing past 65504
    weights = {k: ((torch.rand(v.shape) * 2 - 1) * scale).to(dtype) if v.is_floating_point()
               else torch.tensor(counts) for k, v in OWN.items()}
    weights[FLOAT_KEYS[0]].view(-1)[0] = -MAX_ABS_WEIGHT if dtype != torch.float16 else 0.0
    check_compatible(MODEL, weights, "ok.safetensors")
    FRESH.load_state_dict(weights)
    assert all(torch.isfinite(v).all() for v in FRESH.state_dict().values()
               if v.is_floating_point())


def test_a_tensor_with_no_elements_and_unknown_keys_are_left_to_the_shape_check():
    check_weights({"not.a.key": torch.tensor(float("nan"))}, OWN, "x")   # the keys: elsewhere
    check_weights({}, {"w": torch.zeros(0)}, "x")
    check_weights({"w": torch.zeros(0, dtype=torch.float16)}, {"w": torch.zeros(0)}, "x")


def test_foreign_weights_are_checked_after_renaming(tmp_path):
    """--init-from's timm/fastai path (interop.from_format) uses the same check."""
    model = create_model("xresnet18", n_out=4)
    theirs = to_format(model.state_dict(), "timm")
    theirs["fc.weight"] = theirs["fc.weight"].to(torch.complex64)
    with pytest.raises(ResnetteError, match=r"timm\.safetensors: head\.3\.weight is complex64"):
        from_format(model, theirs, "timm", "timm.safetensors", head_may_differ=True)


def test_optimizer_state_must_be_finite():
    ok = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.ones(4)}},
          "param_groups": [{"lr": 0.1, "betas": (0.9, 0.99), "foreach": None, "params": [0]}]}
    check_finite_state(ok, "c.pt", "optimizer state")
    for bad in (float("nan"), float("inf")):
        state = {"state": {0: {"exp_avg": torch.tensor([1.0, bad])}}, "param_groups": []}
        with pytest.raises(ResnetteError, match="c.pt: its optimizer state holds NaN"):
            check_finite_state(state, "c.pt", "optimizer state")
        with pytest.raises(ResnetteError, match="optimizer state"):
            check_finite_state({"param_groups": [{"lr": bad}]}, "c.pt", "optimizer state")


def test_without_a_model_each_tensor_is_judged_by_its_own_type():
    """A checkpoint is checked before its run is touched, when no model is built yet."""
    check_weights({"w": torch.ones(2), "n": torch.tensor(5)}, None, "c.pt")
    for bad, words in ((torch.tensor([1.0, float("nan")]), "holds NaN"),
                       (torch.ones(2, dtype=torch.complex64), "is complex64, not real"),
                       (torch.ones(2, dtype=torch.bool), "is bool, not real"),
                       (torch.tensor(-1), "is a negative count"), ("text", "is a str, not a")):
        with pytest.raises(ResnetteError, match=f"c.pt: w {words}"):
            check_weights({"w": bad}, None, "c.pt")


def test_types_without_a_fast_reduction_are_widened_and_still_checked():
    """float8 has no aminmax on the CPU: checked through float32, with the same rules."""
    check_weights({"w": torch.ones(3).to(torch.float8_e4m3fn)}, {"w": torch.zeros(3)}, "f8")
    nan = torch.tensor([1.0, float("nan")]).to(torch.float8_e4m3fn)
    with pytest.raises(ResnetteError, match="f8: w holds NaN"):
        check_weights({"w": nan}, {"w": torch.zeros(2)}, "f8")
    check_finite_state({"m": torch.zeros(0), "c": torch.zeros(0, dtype=torch.complex64)}, "s", "x")
