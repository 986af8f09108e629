"""Decoded cache reuse/invalidation, augmentation, loaders, sharding, resume, show_batch, digits."""
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnette.data import AugmentConfig, folder, get_data
from resnette.data.augment import draw_params, sampling_grid
from resnette.data.cache import decoded_store
from resnette.data.folders import scan_folder
from resnette.utils import ResnetteError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def make_tree(root: Path, n=6, labels=("a", "b", "c"), size=(48, 36)) -> Path:
    rng = np.random.default_rng(0)
    for s in ("train", "valid"):
        for lab in labels:
            for i in range(n):
                p = root / s / lab / f"{i}.png"
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(p)
    return root


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "ds")


def dls_for(root, tmp_path, **kw):
    kw = {"size": 16, "presize": 24, "bs": 4, "cache_dir": tmp_path / "cache", **kw}
    return folder(root, **kw)


# --- the decoded cache --------------------------------------------------------------------
def test_cache_is_reused_then_rebuilt_when_folder_changes(tree, tmp_path):
    s = scan_folder(tree)
    first = decoded_store(s.root, s.files, 24, cache_dir=tmp_path / "c")
    again = decoded_store(s.root, s.files, 24, cache_dir=tmp_path / "c")
    assert first.decoded == len(s.files) and again.decoded == 0
    assert np.array_equal(first.images, again.images) and first.path == again.path
    f = s.files[0]
    os.utime(f, ns=(time.time_ns(), f.stat().st_mtime_ns + 10**9))  # touched
    touched = decoded_store(s.root, s.files, 24, cache_dir=tmp_path / "c")
    assert touched.decoded == len(s.files) and touched.path != first.path
    Image.new("RGB", (30, 30)).save(tree / "train" / "a" / "new.png")  # added
    s2 = scan_folder(tree)
    added = decoded_store(s2.root, s2.files, 24, cache_dir=tmp_path / "c")
    assert added.decoded == len(s.files) + 1
    other_size = decoded_store(s2.root, s2.files, 20, cache_dir=tmp_path / "c")
    assert other_size.decoded > 0 and other_size.images.shape[1:] == (20, 20, 3)


def test_unfinished_build_is_never_reused(tree, tmp_path):
    s = scan_folder(tree)
    store = decoded_store(s.root, s.files, 24, cache_dir=tmp_path / "c")
    (store.path / "meta.json").unlink()  # as if killed before the final rename
    assert decoded_store(s.root, s.files, 24, cache_dir=tmp_path / "c").decoded == len(s.files)
    assert not [p for p in (tmp_path / "c").iterdir() if p.name.startswith(".")]  # no temp left


def test_parallel_build_matches_serial(tmp_path):
    root = make_tree(tmp_path / "big", n=90, size=(20, 20))  # 540 files: above the parallel threshold
    s = scan_folder(root)
    par = decoded_store(s.root, s.files, 16, cache_dir=tmp_path / "p", workers=2)
    ser = decoded_store(s.root, s.files, 16, cache_dir=tmp_path / "s", workers=1)
    assert np.array_equal(par.images, ser.images)


# --- augmentation ---------------------------------------------------------------------------
def test_identity_parameters_give_identity_grid():
    p = draw_params(2, AugmentConfig(), torch.Generator().manual_seed(0))
    neutral = dict(cw=1, ch=1, cx=0, cy=0, flip=1, deg=0, scale=1, col=0.5, row=0.5, warp_x=0, warp_y=0)
    p = {k: torch.full_like(v, float(neutral.get(k, 0))) for k, v in p.items()}
    g = sampling_grid(p, 5)
    lin = torch.linspace(-1, 1, 5)
    assert torch.allclose(g[..., 0], lin.expand(2, 5, 5), atol=1e-6)
    assert torch.allclose(g[..., 1], lin.view(5, 1).expand(2, 5, 5), atol=1e-6)


def test_augmentation_parameters_follow_fastai_ranges():
    cfg = AugmentConfig()
    p = draw_params(20000, cfg, torch.Generator().manual_seed(0))
    area = p["cw"] * p["ch"]
    assert area.min() >= 0.5 - 1e-9 and area.max() <= 1 + 1e-9
    aspect = p["cw"] / p["ch"]
    assert aspect.min() >= 3 / 4 - 1e-9 and aspect.max() <= 4 / 3 + 1e-9
    assert abs((p["flip"] < 0).float().mean() - 0.5) < 0.02
    assert abs((p["deg"] != 0).double().mean() - 0.75) < 0.02 and p["deg"].abs().max() <= 10
    assert (1 / p["scale"]).max() <= 1.1 and abs((p["scale"] != 1).double().mean() - 0.75) < 0.02
    assert p["warp_x"].abs().max() <= 0.2 and abs((p["bright"] != 0.5).double().mean() - 0.75) < 0.02
    assert p["bright"].min() >= 0.4 and p["bright"].max() <= 0.6
    assert p["contrast"].min() >= 0.8 - 1e-9 and p["contrast"].max() <= 1.25 + 1e-9


def test_train_batches_shape_range_and_seeding(tree, tmp_path):
    dls = dls_for(tree, tmp_path)
    x, y = next(iter(dls.train))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    lo = (0 - torch.tensor(dls.mean)) / torch.tensor(dls.std)
    hi = (1 - torch.tensor(dls.mean)) / torch.tensor(dls.std)
    assert (x >= lo.view(1, 3, 1, 1) - 1e-4).all() and (x <= hi.view(1, 3, 1, 1) + 1e-4).all()
    same = dls_for(tree, tmp_path)
    other = dls_for(tree, tmp_path, seed=1)
    a = [b for b in dls.train]  # epoch 1 now (iteration advances the epoch)
    dls.train.set_epoch(0)
    assert torch.equal(torch.cat([b[0] for b in dls.train]), torch.cat([b[0] for b in same.train]))
    assert not torch.equal(next(iter(other.train))[0], next(iter(same.train))[0])
    assert not torch.equal(a[0][0], x)  # a new epoch: new order and new augmentation


def test_valid_is_deterministic_in_order_and_unaugmented(tree, tmp_path):
    dls = dls_for(tree, tmp_path, size=24)
    runs = [torch.cat([x for x, _ in dls.valid]) for _ in range(2)]
    assert torch.equal(runs[0], runs[1]) and len(runs[0]) == dls.valid.n == 18
    pixels = dls.valid.decode_batch(runs[0])  # presize == size: exactly the stored pixels back
    assert torch.equal(pixels.permute(0, 3, 1, 2), dls.valid.images(range(18)))
    ys = torch.cat([y for _, y in dls.valid])
    assert torch.equal(ys, dls.valid.labels)


def test_set_epoch_skip_resumes_exactly(tree, tmp_path):
    dls = dls_for(tree, tmp_path)
    dls.train.set_epoch(3)
    full = list(dls.train)
    dls.train.set_epoch(3, skip=2)
    rest = list(dls.train)
    assert len(full) == len(dls.train) == 4 and len(rest) == 2
    for (xa, ya), (xb, yb) in zip(full[2:], rest):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_prefetch_threads_do_not_change_batches(tree, tmp_path):
    a = dls_for(tree, tmp_path, prefetch=3, workers=2)
    b = dls_for(tree, tmp_path, prefetch=0)
    for (xa, ya), (xb, yb) in zip(a.train, b.train):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_a_cpu_loader_prepares_batches_inline_unless_asked_for_threads(tree, tmp_path):
    """On a CPU the step uses every core: threads preparing batches beside it only slow it."""
    def data_threads(dls):
        seen = set()
        for _ in dls.train:
            seen |= {t.name for t in threading.enumerate() if t.name.startswith("resnette-data")}
        return seen
    assert dls_for(tree, tmp_path).train.prefetch == 0
    assert data_threads(dls_for(tree, tmp_path)) == set()
    assert data_threads(dls_for(tree, tmp_path, prefetch=2, workers=1)) != set()


def test_ddp_shards_cover_everything_once(tree, tmp_path):
    world = 3
    ranks = [dls_for(tree, tmp_path, rank=r, world_size=world, bs=2) for r in range(world)]
    valid_items = [i for d in ranks for i in d.valid.items]
    assert sorted(valid_items) == sorted(dls_for(tree, tmp_path).valid.items)  # every image once
    assert sum(d.valid.n for d in ranks) == 18
    assert len({len(d.train) for d in ranks}) == 1  # equal batch counts per rank
    seen = [set(d.train.order(5).tolist()) for d in ranks]
    assert not (seen[0] & seen[1]) and not (seen[1] & seen[2]) and sum(map(len, seen)) == 18


def test_size_is_settable_and_channels_last(tree, tmp_path):
    dls = dls_for(tree, tmp_path, channels_last=True)
    dls.size = 20
    x, _ = next(iter(dls.train))
    assert x.shape[-2:] == (20, 20) and x.is_contiguous(memory_format=torch.channels_last)
    assert next(iter(dls.valid))[0].shape[-1] == 20
    with pytest.raises(ResnetteError):
        dls.train.size = 2


def test_one_channel(tree, tmp_path):
    dls = dls_for(tree, tmp_path, channels=1)
    assert next(iter(dls.train))[0].shape[1] == 1 and dls.channels == 1 and len(dls.mean) == 1


def test_show_batch_writes_png(tree, tmp_path):
    dls = dls_for(tree, tmp_path)
    fig = dls.show_batch(tmp_path / "grid.png", max_n=4)
    with Image.open(tmp_path / "grid.png") as im:
        assert im.format == "PNG" and im.size[0] > 100
    shown = [ax for ax in fig.axes if ax.images]   # one titled image per item, max_n of them
    assert len(shown) == 4 and all(ax.get_title() in dls.names for ax in shown)


def test_show_batch_without_a_path_writes_nothing(tree, tmp_path):
    dls = dls_for(tree, tmp_path)
    before = set(Path.cwd().iterdir())
    fig = dls.show_batch()   # fastai's default max_n=9, capped by the batch
    assert len([ax for ax in fig.axes if ax.images]) == min(9, dls.train.bs)
    assert set(Path.cwd().iterdir()) == before


def test_batch_bigger_than_dataset_is_clear(tree, tmp_path):
    with pytest.raises(ResnetteError, match="lower the batch size"):
        dls_for(tree, tmp_path, bs=64)


def test_digits_dataset():
    pytest.importorskip("sklearn")
    dls = get_data("digits", bs=32, seed=0)
    assert dls.c == 10 and dls.train.n + 32 > 1438 and dls.valid.n == 359
    x, y = next(iter(dls.train))
    assert x.shape == (32, 3, 32, 32) and y.max() < 10
    assert get_data("digits", channels=1).channels == 1
    v1 = set(get_data("digits", seed=1).valid.items)
    assert v1 != set(dls.valid.items)


def test_mnist_tiny_end_to_end(tmp_path):
    root = SHARED / "mnist_tiny"
    if not root.is_dir():
        pytest.skip("shared mnist_tiny not present")
    dls = folder(root, size=28, presize=28, bs=64, cache_dir=tmp_path)
    assert dls.vocab == ["3", "7"] and dls.train.n == 704 and dls.valid.n == 699
    x, y = next(iter(dls.train))
    assert x.shape == (64, 3, 28, 28) and set(y.tolist()) == {0, 1}
