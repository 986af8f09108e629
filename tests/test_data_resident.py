"""Data resident on the device: same batches as streaming, same resume/shard semantics, fallback."""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from resnette.data import folder
from resnette.data.loaders import Loader
from resnette.data.resident import RESERVE_BYTES, fits


def make_tree(root, n=7, labels=("a", "b", "c")):
    rng = np.random.default_rng(1)
    for s in ("train", "valid"):
        for lab in labels:
            for i in range(n):
                p = root / s / lab / f"{i}.png"
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(p)
    return root


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "ds")


def pair(tree, tmp_path, **kw):
    """The same data twice: streamed with prefetch threads, and resident on the CPU."""
    kw = {"size": 16, "presize": 24, "bs": 4, "cache_dir": tmp_path / "cache", "seed": 3, **kw}
    return folder(tree, resident=False, workers=2, prefetch=2, **kw), folder(tree, resident=True, **kw)


def all_batches(loader, epoch, skip=0):
    loader.set_epoch(epoch, skip)
    return list(loader)


def assert_same(a, b):
    assert len(a) == len(b) and len(a) > 0
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(ya, yb)
        assert torch.equal(xa, xb)  # bit for bit: the same uint8 rows through the same code


def test_resident_gives_the_streaming_batches_bit_for_bit(tree, tmp_path):
    stream, res = pair(tree, tmp_path)
    assert not stream.train.resident and res.train.resident and res.valid.resident
    assert "resident on cpu" in res.train.placement and "streamed" in stream.train.placement
    for epoch in (0, 1, 4):
        assert_same(all_batches(stream.train, epoch), all_batches(res.train, epoch))
    assert_same(all_batches(stream.valid, 0), all_batches(res.valid, 0))
    # epochs differ from each other (the seed and epoch, not the path, decide the batches)
    assert not torch.equal(all_batches(res.train, 0)[0][0], all_batches(res.train, 1)[0][0])


def test_resident_batches_depend_only_on_seed_and_epoch(tree, tmp_path):
    _, a = pair(tree, tmp_path)
    _, b = pair(tree, tmp_path)
    list(a.train)                      # a has run epoch 0 already; b runs epoch 2 first
    assert_same(all_batches(a.train, 2), all_batches(b.train, 2))
    _, other = pair(tree, tmp_path, seed=4)
    assert not torch.equal(all_batches(other.train, 2)[0][0], all_batches(a.train, 2)[0][0])


def test_resident_skip_resumes_mid_epoch_and_epochs_advance(tree, tmp_path):
    stream, res = pair(tree, tmp_path)
    full = all_batches(res.train, 1)
    tail = all_batches(res.train, 1, skip=2)
    assert_same(full[2:], tail)
    assert_same(all_batches(stream.train, 1, skip=2), tail)
    nxt = list(res.train)              # no set_epoch: the epoch after the last one (2)
    assert_same(nxt, all_batches(stream.train, 2))


def test_resident_keeps_only_its_own_rows_and_shards_like_streaming(tree, tmp_path):
    kw = {"size": 16, "presize": 24, "bs": 2, "cache_dir": tmp_path / "cache"}
    for rank in (0, 1):
        stream = folder(tree, resident=False, rank=rank, world_size=2, **kw)
        res = folder(tree, resident=True, rank=rank, world_size=2, **kw)
        # what was copied, as the placement line reports it: this rank's valid slice only,
        # every train image (each epoch's permutation is shared out across the ranks)
        assert f"valid data: resident on cpu ({len(res.valid.items)} images," in res.valid.placement
        assert "train data: resident on cpu (21 images," in res.train.placement
        assert len(res.valid.items) in (10, 11)                            # 21 split in two
        # the copied rows are the store's, in the Loader's order: the same batches as streaming
        assert_same(all_batches(stream.train, 3), all_batches(res.train, 3))
        assert_same(all_batches(stream.valid, 0), all_batches(res.valid, 0))


def test_resident_size_change_channels_last_and_show_batch(tree, tmp_path):
    stream, res = pair(tree, tmp_path, channels_last=True)
    stream.size = res.size = 20          # progressive resizing between epochs
    x, y = next(iter(res.train))
    assert x.shape == (4, 3, 20, 20) and x.is_contiguous(memory_format=torch.channels_last)
    assert_same(all_batches(stream.train, 0), all_batches(res.train, 0))
    assert len(res.show_batch(tmp_path / "b.png", max_n=4).axes) >= 4
    assert (tmp_path / "b.png").stat().st_size > 0


def test_resident_none_streams_on_cpu():
    store = np.zeros((10, 8, 8, 3), np.uint8)
    loader = Loader(store, np.arange(10), np.zeros(10), [str(i) for i in range(10)], bs=2,
                    train=True, size=8, mean=(0.5,) * 3, std=(0.2,) * 3)
    assert not loader.resident and "streamed" in loader.placement


def test_fit_rule_keeps_room_for_training():
    gib = 2**30
    assert fits(1 * gib, 80 * gib)                 # Imagenette on an H100
    assert not fits(41 * gib, 80 * gib)            # more than half of what is free
    assert not fits(1 * gib, 2 * gib + gib // 2)   # would leave under RESERVE_BYTES
    assert fits(1 * gib, RESERVE_BYTES + 2 * gib)


def test_cuda_without_room_falls_back_with_one_line(monkeypatch):
    # No GPU here: the device's free memory is the only CUDA call made before deciding.
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3 * 2**30, 16 * 2**30))
    # a 1.46 GiB store that takes no memory: every pixel is the same byte
    store = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=(2000, 512, 512, 3),
                                            strides=(0, 0, 0, 0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loader = Loader(store, np.arange(2000), np.zeros(2000), [str(i) for i in range(2000)], bs=8,
                        train=True, size=64, mean=(0.5,) * 3, std=(0.2,) * 3, device="cuda")
    assert not loader.resident
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and "\n" not in msgs[0]
    assert "train data (2,000 images, 1.46 GiB) streamed from host memory" in msgs[0]
    assert "3.00 GiB free" in msgs[0] and "keeping 2.00 GiB" in msgs[0]   # one unit family
    assert " GB" not in msgs[0] and loader.placement == msgs[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_resident_by_default_and_same_batches_as_streaming(tree, tmp_path):
    kw = {"size": 16, "presize": 24, "bs": 4, "cache_dir": tmp_path / "cache", "seed": 3, "device": "cuda"}
    auto, stream = folder(tree, **kw), folder(tree, resident=False, **kw)
    assert auto.train.resident and auto.valid.resident and not stream.train.resident
    assert "train data: resident on cuda" in auto.train.placement
    batches = all_batches(auto.train, 1)
    assert batches[0][0].is_cuda and batches[0][1].is_cuda
    assert_same(all_batches(stream.train, 1), batches)
    assert_same(all_batches(stream.valid, 0), all_batches(auto.valid, 0))
