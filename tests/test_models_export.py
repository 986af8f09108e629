"""Models leave eager PyTorch cleanly (torch.compile, ONNX), the summary counts the work, and
the bench helpers measure real rates."""
import os
import warnings

import pytest
import torch
from torch import nn

from resnette.commands import bench
from resnette.models import create_model, summary

# Every option that adds a module of our own (SE, self-attention, blur pool, Mish), at a
# quarter width so tracing and exporting stay fast.
ALL_OPTIONS = dict(se=True, sa=True, blur=True, act="mish", widen=0.25)


def test_compile_traces_the_whole_graph_forward_and_backward():
    """fullgraph=True fails on any graph break. The "eager" backend checks what dynamo can
    trace without spending a minute of this small CPU on inductor's C++ code generation."""
    torch.manual_seed(0)
    model = create_model("xresnet18", n_out=5, c_in=1, **ALL_OPTIONS)
    x = torch.rand(2, 1, 32, 32)
    expected = model(x)
    expected.sum().backward()
    grad = model.stem[0][0].weight.grad.clone()
    model.zero_grad()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    out = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.stem[0][0].weight.grad, grad, rtol=1e-3, atol=1e-5)


def _onnx_matches(model: nn.Module, tmp_path, dynamo: bool) -> None:
    import onnxruntime as ort
    model.eval()
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, (torch.rand(2, 1, 40, 40),), str(path), dynamo=True,
                              dynamic_shapes=({0: "batch", 2: "height", 3: "width"},))
        else:
            torch.onnx.export(model, (torch.rand(2, 1, 40, 40),), str(path), dynamo=False,
                              input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 1, 57, 57)          # another batch size and an odd image size
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), model(x), rtol=1e-4, atol=1e-4)


def test_onnx_export_matches_onnxruntime(tmp_path):
    pytest.importorskip("onnxruntime")
    _onnx_matches(create_model("xresnet18", n_out=5, c_in=1, **ALL_OPTIONS), tmp_path, dynamo=False)
    _onnx_matches(create_model("simple_cnn", n_out=5, c_in=1), tmp_path, dynamo=False)


@pytest.mark.skipif(not os.environ.get("RESNETTE_SLOW_TESTS"),
                    reason="the torch.export-based ONNX exporter takes ~20 s; RESNETTE_SLOW_TESTS=1")
def test_onnx_dynamo_export_matches_onnxruntime(tmp_path):
    pytest.importorskip("onnxscript")
    _onnx_matches(create_model("xresnet18", n_out=5, c_in=1, **ALL_OPTIONS), tmp_path, dynamo=True)


def test_summary_counts_parameters_and_multiply_adds_by_hand():
    model = create_model("simple_cnn", n_out=10)
    s = summary(model, size=128, depth=1)
    assert s.params == 395_674 == s.trainable
    # Five stride-2 3x3 convs: out_channels * in_channels * 9 per output pixel, then linear.
    chans, grid, macs = [3, 16, 32, 64, 128, 256], 128, 0
    for ni, nf in zip(chans, chans[1:]):
        grid //= 2
        macs += nf * grid * grid * ni * 9
    assert s.macs == macs + 256 * 10
    first = s.rows[0]
    assert first.kind == "ConvLayer" and first.shape == (16, 64, 64) and first.params == 464
    assert first.macs == 16 * 64 * 64 * 3 * 9
    assert s.rows[-1].shape == (10,)
    assert "395,674" in str(s) and model.training   # mode restored


def test_summary_shows_where_the_work_is():
    """The chapter: the late layers hold most of the weights, while the early, large-grid
    layers do at least as much work with almost no weights."""
    s = summary(create_model("xresnet18", n_out=10), size=128, depth=1)
    by_name = {r.name: r for r in s.rows}
    assert [r.name for r in s.rows] == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert by_name["stage4"].params > 0.7 * s.params
    early = by_name["stem"].macs + by_name["stage1"].macs
    assert early > 1.5 * by_name["stage4"].macs
    assert by_name["stem"].params + by_name["stage1"].params < 0.02 * s.params
    assert by_name["stage4"].shape == (512, 4, 4)
    assert abs(s.macs - 670_438_400) < 1_000_000          # ~0.67 G multiply-adds at 128 px
    sa = summary(create_model("xresnet18", n_out=10, sa=True), size=128, depth=1)
    assert sa.macs > s.macs        # self-attention's batched products are counted too


def test_bench_rates_are_measured(tmp_path):
    model = create_model("simple_cnn", n_out=4)
    before = model[0][0].weight.detach().clone()
    rate = bench.train_rate(model, bs=4, size=32, precision="fp32", channels_last=True, steps=2)
    assert rate > 0 and not torch.equal(before, model[0][0].weight)   # it really trained
    assert bench.inference_rate(model, bs=4, size=32, precision="fp32", steps=2) > 0
    assert bench.matmul_rate(torch.float32, n=128, reps=2) > 1e8
    assert bench.train_flops_per_image(1000) == 6000
