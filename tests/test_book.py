"""resnette.book: the chapter's names, its data cells on resnette's loaders, its Learner.

Expected values come from fastai 2.8's code (read, not run): URLs' strings (data/external.py),
RandomSplitter's recipe (data/transforms.py: torch.manual_seed(seed), torch.randperm(n), the
first int(valid_pct * n) validation), GrandparentSplitter and get_image_files (the same file).
The layers: tests/test_book_layers.py.
"""
import re
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

import resnette.book as book
from resnette.book import (CategoryBlock, CutMix, DataBlock, GrandparentSplitter, ImageBlock,
                           Learner, MixUp, Normalize, RandomSplitter, Resize, URLs,
                           aug_transforms, get_image_files, imagenet_stats, parent_label,
                           untar_data)
from resnette.utils import ResnetteError

from fakes import FakeDataLoaders, tiny_net

@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """The decoded-image cache and datasets go to a temporary RESNETTE_HOME."""
    monkeypatch.setenv("RESNETTE_HOME", str(tmp_path / "home"))


CHAPTER_NAMES = {
    "untar_data", "URLs", "DataBlock", "DataLoaders", "ImageBlock", "CategoryBlock",
    "get_image_files", "parent_label", "GrandparentSplitter", "RandomSplitter", "Resize",
    "aug_transforms", "Normalize", "imagenet_stats", "nn", "F", "torch", "Module", "noop",
    "NormType", "Flatten", "ConvLayer", "ResBlock", "xresnet18", "xresnet34", "xresnet50",
    "xresnet101", "xresnet152", "Learner", "accuracy", "LabelSmoothingCrossEntropy", "MixUp",
    "CutMix"}


def test_star_import_gives_exactly_the_chapters_names():
    ns: dict = {}
    exec("from resnette.book import *", ns)
    assert set(ns) - {"__builtins__"} == CHAPTER_NAMES
    assert ns["nn"] is torch.nn and ns["torch"] is torch and ns["F"] is torch.nn.functional


@pytest.mark.parametrize("name", ["cnn_learner", "vision_learner", "ImageDataLoaders", "Adam"])
def test_a_name_outside_the_chapter_fails_with_one_line(name):
    with pytest.raises(AttributeError) as err:
        getattr(book, name)
    assert str(err.value).startswith(f"resnette.book covers chapter 14; {name} is not in it")
    assert "\n" not in str(err.value)


def test_nothing_in_resnette_imports_the_book():
    root = Path(book.__file__).parents[1]
    imports_book = re.compile(r"^\s*(from|import)\s+(resnette\.book|\.+book)\b|"
                              r"^\s*from\s+(resnette|\.+)\s+import\s+.*\bbook\b", re.M)
    users = [str(f) for f in root.rglob("*.py") if "book" not in f.relative_to(root).parts
             and imports_book.search(f.read_text())]
    assert users == []
    assert imports_book.search("    from ..book import DataBlock")   # the check can fail


def test_urls_are_fastais():
    s3 = "https://s3.amazonaws.com/fast-ai-imageclas/"
    assert URLs.IMAGENETTE_160 == s3 + "imagenette2-160.tgz"
    assert URLs.IMAGENETTE_320 == s3 + "imagenette2-320.tgz"
    assert URLs.IMAGEWOOF == s3 + "imagewoof2.tgz"
    assert URLs.MNIST == s3 + "mnist_png.tgz"
    assert URLs.MNIST_TINY == "https://s3.amazonaws.com/fast-ai-sample/mnist_tiny.tgz"
    assert imagenet_stats == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


# ---- data --------------------------------------------------------------------------------------
COLOURS = {"a": (200, 30, 30), "b": (30, 200, 30), "c": (30, 30, 200)}


def nette(root: Path, n_train: int = 6, n_val: int = 2, size: int = 40) -> Path:
    """An Imagenette-like folder: train/ and val/ with one folder per class of flat colours,
    plus what get_image_files must skip or find (a csv, a hidden file, an upper-case .JPEG)."""
    for split, n in (("train", n_train), ("val", n_val)):
        for label, rgb in COLOURS.items():
            (root / split / label).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (size, size + 8), rgb).save(root / split / label / f"{i}.png")
    Image.new("RGB", (size, size), (0, 0, 0)).save(root / "train" / "a" / "x.JPEG")
    Image.new("RGB", (size, size), (0, 0, 0)).save(root / "train" / "a" / ".hidden.png")
    (root / "noisy.csv").write_text("path,label\n")
    return root


def block(**kwargs) -> DataBlock:
    args = dict(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                splitter=GrandparentSplitter(valid_name="val"), get_y=parent_label,
                item_tfms=Resize(24), batch_tfms=[*aug_transforms(min_scale=0.5, size=16),
                                                  Normalize.from_stats(*imagenet_stats)])
    return DataBlock(**{**args, **kwargs})


def test_get_image_files_and_parent_label(tmp_path):
    files = get_image_files(nette(tmp_path))
    assert len(files) == 3 * 6 + 1 + 3 * 2            # the .JPEG counts, .csv and hidden do not
    # fastai's image_extensions: every image/* type of the system's MIME tables too
    assert {".jpg", ".jpeg", ".png", ".webp", ".tif", ".bmp", ".gif"} <= book.data.image_extensions
    assert not any(f.name.startswith(".") for f in files)
    assert parent_label(tmp_path / "train" / "b" / "0.png") == "b"


def test_datablock_gives_resnettes_loaders_split_by_grandparent(tmp_path):
    dls = block().dataloaders(nette(tmp_path), bs=4)
    assert dls.vocab == ["a", "b", "c"] and dls.c == 3
    assert (dls.train.n, dls.valid.n) == (16, 6)      # 19 train items, 4 full batches of 4
    assert len(dls.train.items) == 19 and all("/val/" in i for i in dls.valid.items)
    x, y = dls.one_batch()
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32 and y.shape == (4,)
    assert dls.train.presize == 24
    assert dls.train.device.type == ("cuda" if torch.cuda.is_available() else "cpu")   # fastai's


def test_datablock_reuses_the_decode_cache_of_resnettes_own_folder_loader(tmp_path):
    from resnette.data import folder
    root = nette(tmp_path)
    ours = block().dataloaders(root, bs=4).train.store
    theirs = folder(root, size=16, presize=24, bs=4).train.store
    assert Path(ours.filename) == Path(theirs.filename)     # one cache entry, decoded once


def test_valid_batches_are_the_images_normalised_by_the_given_stats(tmp_path):
    dls = block().dataloaders(nette(tmp_path), bs=6)
    x, y = next(iter(dls.valid))
    mean, std = (torch.tensor(s).view(3, 1, 1) for s in imagenet_stats)
    for img, label in zip(x, y):
        rgb = torch.tensor(COLOURS[dls.vocab[label]], dtype=torch.float32).view(3, 1, 1) / 255
        assert float((img - (rgb - mean) / std).abs().max()) < 2e-2
    raw = block(batch_tfms=None).dataloaders(tmp_path, bs=6)   # no Normalize: [0, 1], as fastai
    x, _ = next(iter(raw.valid))
    assert x.shape[-1] == 24 and 0 <= float(x.min()) and float(x.max()) <= 1


def test_random_splitter_is_fastais_recipe():
    items = list(range(50))
    torch.manual_seed(42)
    perm = torch.randperm(50).tolist()                # fastai: manual_seed, randperm, cut
    train, valid = RandomSplitter(0.2, seed=42)(items)
    assert valid == perm[:10] and train == perm[10:]


def test_no_splitter_is_a_seeded_random_20_percent(tmp_path):
    root = nette(tmp_path)
    first = block(splitter=None).dataloaders(root, bs=2)
    again = block(splitter=None).dataloaders(root, bs=2)
    assert first.valid.n == int(0.2 * 25) == 5
    assert first.valid.items == again.valid.items


def test_grandparent_splitter_leaves_other_folders_out():
    items = [Path(p) for p in ("r/train/a/1.png", "r/val/a/2.png", "r/test/a/3.png",
                               "r/valid/b/4.png")]
    assert GrandparentSplitter(valid_name="val")(items) == ([0], [1])
    assert GrandparentSplitter()(items) == ([0], [3])
    assert GrandparentSplitter(valid_name=["val", "valid"])(items) == ([0], [1, 3])


@pytest.mark.parametrize("make, words", [
    (lambda: block(item_tfms=None), "item_tfms=Resize"),
    (lambda: block(blocks=(ImageBlock,)), "CategoryBlock"),
    (lambda: aug_transforms(flip_vert=True), "flip_vert"),
    (lambda: Normalize(), "from_stats"),
    (lambda: Resize((128, 96)), "one int size"),
])
def test_arguments_without_a_resnette_equivalent_fail_in_one_line(make, words):
    with pytest.raises(ResnetteError, match=words) as err:
        make()
    assert "\n" not in str(err.value)


def test_aug_transforms_maps_fastais_arguments():
    (aug,) = aug_transforms(mult=2.0, max_rotate=5.0, min_scale=0.35, size=96, do_flip=False)
    cfg = aug.config
    assert (cfg.max_rotate, cfg.max_warp, cfg.max_lighting) == (10.0, 0.4, 0.4)
    assert (cfg.min_scale, cfg.do_flip, cfg.ratio, aug.size) == (0.35, False, (1.0, 1.0), 96)


def test_untar_data_extracts_the_chapters_url_or_uses_a_local_folder(tmp_path, monkeypatch):
    src = nette(tmp_path / "src" / "imagenette2-160")
    with tarfile.open(tmp_path / "nette.tgz", "w:gz") as t:
        t.add(src, arcname="imagenette2-160")
    monkeypatch.setenv("RESNETTE_URL_IMAGENETTE_160", (tmp_path / "nette.tgz").as_uri())
    path = untar_data(URLs.IMAGENETTE_160)
    assert path == tmp_path / "home" / "imagenette2-160" and (path / "val" / "c" / "1.png").exists()
    monkeypatch.setenv("RESNETTE_URL_IMAGENETTE_320", src.as_uri())    # a folder: used in place
    assert untar_data(URLs.IMAGENETTE_320) == src
    with pytest.raises(ResnetteError, match="is not one"):
        untar_data("https://example.com/other.tgz")


# ---- Learner -----------------------------------------------------------------------------------
def test_learner_maps_fastais_callbacks_onto_resnettes_mixing():
    dls = FakeDataLoaders()
    learn = Learner(dls, tiny_net(), loss_func=nn.CrossEntropyLoss(), metrics=book.accuracy,
                    cbs=[MixUp(), CutMix(0.5)])
    assert (learn.settings.mixup, learn.settings.cutmix, learn.settings.wd) == (0.4, 0.5, 0.01)
    assert learn.columns == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    with pytest.raises(ResnetteError, match="path"):
        Learner(dls, tiny_net(), path="somewhere")


def test_mixup_given_to_resnettes_own_learner_says_so():
    from resnette.train import Learner as Plain
    learn = Plain(FakeDataLoaders(), tiny_net(), cbs=[MixUp()], quiet=True)
    with pytest.raises(ResnetteError, match="mixup=0.4"):
        learn.fit(1)
