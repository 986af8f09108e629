"""Weights to and from timm and fastai (issue 19 #3): our name maps against the libraries' own
module trees and outputs, recorded from timm 1.0.31 and fastai 2.8.12 by
tests/data/make_interop_records.py (both import torchvision, which cannot live beside this
torch); a live check against timm runs wherever timm imports."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from resnette.commands.export import export, how_to_load
from resnette.models import XResNet, create_model
from resnette.models.interop import COUNTERPARTS, counterpart, from_format, renames, to_format
from resnette.run import folder as runs
from resnette.run.config import make_config, save_config
from resnette.run.setup import prepare
from resnette.run.trained import init_from, load_trained
from resnette.train.checkpoints import save_weights
from resnette.utils import ResnetteError

DATA = Path(__file__).parent / "data"
PAIRS = [(fmt, ours, theirs) for fmt, names in COUNTERPARTS.items()
         for ours, theirs in names.items()]


def shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def meta_model(arch: str, **kw) -> torch.nn.Module:
    with torch.device("meta"):   # shapes and names without allocating or initialising
        return create_model(arch, **kw)


@pytest.mark.parametrize("fmt,ours,theirs", PAIRS, ids=[f"{p[0]}-{p[2]}" for p in PAIRS])
def test_our_names_and_shapes_are_exactly_the_librarys_own(fmt, ours, theirs):
    recorded = json.loads((DATA / "interop_keys.json").read_text())[fmt][theirs]
    mine = shapes(meta_model(ours))
    names = renames(mine, fmt)
    assert [[names[k], s] for k, s in mine.items()] == recorded   # every key, in their order


def test_fastai_xresnet18_key_list_matches():
    lines = [ln for ln in (DATA / "fastai_xresnet18_keys.txt").read_text().splitlines()
             if not ln.startswith("#")]
    recorded = [(ln.split(" ", 1)[0], ln.split(" ", 1)[1]) for ln in lines]
    mine = shapes(meta_model("xresnet18"))
    names = renames(mine, "fastai")
    assert [(names[k], str(tuple(s))) for k, s in mine.items()] == recorded
    assert len(recorded) == 134 and recorded[-1][0] == "11.bias"


def test_every_claimed_pair_was_checked_numerically_both_ways():
    record = json.loads((DATA / "interop_equivalence.json").read_text())["max_abs_diff"]
    assert set(record) == {f"{f}:{t}<->{o}" for f, o, t in PAIRS}
    for pair, diffs in record.items():
        assert diffs["ours_vs_theirs"] < 1e-5 and diffs["back_vs_theirs"] < 1e-5, pair
        assert diffs["logit_scale"] > 0.1, pair   # outputs that are not all zero


# the narrow record models: our architecture's block expansion and options, their depths
NARROW = {"xresnet18": (1, {}), "xresnext50": (4, {}), "xse_resnext50": (4, {"se": True})}


def depths(keys, fmt: str) -> list[int]:
    """Blocks per stage, read from their names (timm: layerK.J., fastai: (K+3).J.convpath)."""
    pattern = r"layer(\d)\.(\d+)\." if fmt == "timm" else r"(\d+)\.(\d+)\.convpath\."
    found = [re.match(pattern, k) for k in keys]
    stages = {(int(m[1]) - (0 if fmt == "timm" else 3), int(m[2])) for m in found if m}
    return [1 + max(j for s, j in stages if s == stage) for stage in (1, 2, 3, 4)]


@pytest.mark.parametrize("label", ["timm_basic", "timm_bottleneck", "fastai_basic", "fastai_se"])
def test_their_weights_give_their_outputs_in_our_model_and_come_back_unchanged(label):
    from safetensors import safe_open
    path = DATA / "interop_tiny.safetensors"
    with safe_open(str(path), framework="pt") as f:
        spec = json.loads(f.metadata()[label])
    tensors = load_file(str(path))
    theirs = {k.split("/", 1)[1]: v for k, v in tensors.items()
              if k.startswith(label + "/") and not k.endswith("/output")}
    fmt = label.split("_")[0]
    expansion, extra = NARROW[spec["arch"]]
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["options"].items()}
    model = XResNet(depths(theirs, fmt), expansion, **options, **extra)
    model.load_state_dict(from_format(model, theirs, fmt, label))
    with torch.no_grad():
        got = model.eval()(tensors["input"])
    expected = tensors[f"{label}/output"]
    assert expected.abs().max() > 0.1
    assert (got - expected).abs().max() < 1e-5
    back = to_format(model.state_dict(), fmt)
    assert set(back) == set(theirs)   # (a safetensors file keeps its keys sorted)
    assert all(torch.equal(back[k], theirs[k]) for k in theirs)


def test_pairs_that_do_not_map_exactly_are_refused_in_one_line():
    cases = [("timm", "resblock_cnn", {}, "no exact timm counterpart"),
             ("timm", "xse_resnext50", {}, "no exact timm counterpart"),
             ("fastai", "xresnet18_bottleneck", {}, "no exact fastai counterpart"),
             ("timm", "xresnet18", {"act": "mish"}, "uses ReLU"),
             ("fastai", "xresnet50", {"sa": True}, "self-attention"),
             ("timm", "xresnet34", {"blur": True}, "blur-pool")]
    for fmt, arch, opts, words in cases:
        with pytest.raises(ResnetteError, match=words) as e:
            counterpart(fmt, arch, **opts)
        assert "\n" not in str(e.value)
    assert counterpart("timm", "xresnet50") == "resnet50d"


@pytest.fixture
def run(tmp_path):
    """A run folder holding an xresnet18 for 4 classes with non-default batchnorm statistics."""
    run = prepare(tmp_path / "run")
    save_config(make_config({"data": "digits", "arch": "xresnet18"}), run.config)
    torch.manual_seed(0)
    model = create_model("xresnet18", n_out=4)
    with torch.no_grad():
        model.train()(torch.randn(8, 3, 64, 64) * 2 + 0.5)
    save_weights(run.model, model)
    runs.save_classes(run, list("wxyz"), ["w", "x", "y", "z"], [0.5] * 3, [0.25] * 3, 3)
    return run


def test_export_writes_timm_and_fastai_names_and_init_from_reads_them_back(run, tmp_path):
    original = load_trained(run.path).model.state_dict()
    timm_file = export(run.path, "timm")
    assert timm_file == run.path / "timm-resnet18d.safetensors"
    timm_names = load_file(str(timm_file))
    assert "conv1.6.weight" in timm_names and timm_names["fc.weight"].shape == (4, 512)
    assert torch.equal(timm_names["layer2.0.downsample.1.weight"],
                       original["stage2.0.shortcut.1.0.weight"])
    fastai_file = export(run.path, "fastai", tmp_path / "xresnet18.pth")
    saved = torch.load(fastai_file, weights_only=True)
    assert torch.equal(saved["11.weight"], original["head.3.weight"])
    for source in (timm_file, fastai_file):
        fresh = create_model("xresnet18", n_out=4)
        said = init_from(fresh, source, "xresnet18")
        assert said == f"initialised every weight from {source}"
        assert all(torch.equal(v, original[k]) for k, v in fresh.state_dict().items())
    other = create_model("xresnet18", n_out=7)   # other classes: a fresh head, the rest loaded
    assert "fresh head (4 -> 7 classes)" in init_from(other, fastai_file, "xresnet18")
    assert torch.equal(other.state_dict()["stem.0.0.weight"], original["stem.0.0.weight"])
    with pytest.raises(ResnetteError, match="does not fit this model"):
        init_from(create_model("xresnet34", n_out=4), timm_file, "xresnet34")


def test_export_refuses_a_net_without_counterpart_before_writing(tmp_path):
    run = prepare(tmp_path / "chapter")
    save_config(make_config({"data": "digits", "arch": "simple_cnn"}), run.config)
    save_weights(run.model, create_model("simple_cnn", n_out=4))
    runs.save_classes(run, list("wxyz"), ["w", "x", "y", "z"], [0.5] * 3, [0.25] * 3, 3)
    before = sorted(p.name for p in run.path.iterdir())
    with pytest.raises(ResnetteError, match="simple_cnn has no exact timm counterpart"):
        export(run.path, "timm")
    assert sorted(p.name for p in run.path.iterdir()) == before


def test_init_from_refuses_pickled_code_and_unknown_names(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "f": print}, evil)   # a reference to a function
    with pytest.raises(ResnetteError, match="refusing to load"):
        init_from(create_model("xresnet18", n_out=4), evil, "xresnet18")
    odd = tmp_path / "odd.pth"
    torch.save({"backbone.weight": torch.zeros(1)}, odd)
    with pytest.raises(ResnetteError, match="neither as timm nor as fastai"):
        init_from(create_model("xresnet18", n_out=4), odd, "xresnet18")
    wrapped = tmp_path / "learn.pth"   # fastai's learn.save(): {"model": ..., "opt": ...}
    model = create_model("xresnet18", n_out=4)
    torch.save({"model": to_format(model.state_dict(), "fastai"), "opt": {"state": {}}}, wrapped)
    fresh = create_model("xresnet18", n_out=4)
    init_from(fresh, wrapped, "xresnet18")
    assert torch.equal(fresh.state_dict()["head.3.weight"], model.state_dict()["head.3.weight"])


@pytest.mark.slow   # a fresh process imports torch: seconds on a loaded CI machine
def test_the_export_command_says_how_to_load_the_file(run):
    trained = load_trained(run.path)
    text = how_to_load(trained, "timm", Path("m.safetensors"))
    assert 'timm.create_model("resnet18d", num_classes=4, in_chans=3)' in text
    proc = subprocess.run([sys.executable, "-m", "resnette", "export", str(run.path), "--format",
                           "fastai"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "xresnet18(n_out=4, c_in=3)" in proc.stdout
    assert (run.path / "fastai-xresnet18.safetensors").is_file()


@pytest.mark.slow
def test_live_timm_models_give_our_outputs(tmp_path):
    """Where timm imports (it needs torchvision): every claimed pair, live, both ways."""
    timm = pytest.importorskip("timm")
    x = torch.randn(2, 3, 72, 72)
    for ours, theirs in COUNTERPARTS["timm"].items():
        their_model = timm.create_model(theirs, num_classes=6)
        with torch.no_grad():   # random gammas and statistics: zero-init would hide a wrong map
            for k, v in their_model.state_dict().items():
                if v.dtype.is_floating_point and v.ndim == 1:
                    v.copy_(torch.rand(v.shape) + 0.5)
        model = create_model(ours, n_out=6).eval()
        model.load_state_dict(from_format(model, their_model.state_dict(), "timm", theirs))
        with torch.no_grad():
            expected = their_model.eval()(x)
            assert (model(x) - expected).abs().max() < 1e-5, theirs
            fresh = timm.create_model(theirs, num_classes=6).eval()
            fresh.load_state_dict(to_format(model.state_dict(), "timm"))
            assert (fresh(x) - expected).abs().max() < 1e-5, theirs
