"""Any folder of images: find the files, label them by parent folder, split train/valid.

Layouts understood:
    <root>/<train>/<label>/*  and  <root>/<valid>/<label>/*    (the split comes from the folders)
    <root>/<label>/*  with valid_pct                              (a seeded random split)
where <train> is `train` or `training` and <valid> is `valid`, `val`, `validation` or
`testing` (fastai's MNIST names its folders training/testing). Other folders beside them
(e.g. mnist_tiny's unlabelled `test/`) are ignored. With `valid_pct` and split folders, only
the train folder is split, so the given validation set stays untouched for later use.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resnette.utils import ResnetteError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
TRAIN_NAMES = ("train", "training")
VALID_NAMES = ("valid", "val", "validation", "testing")

# Imagenette and Imagewoof folders are WordNet ids; people read the names.
WORDNET_NAMES = {
    # Imagenette: ten easily told apart ImageNet classes
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
    "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
    "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
    "n03888257": "parachute",
    # Imagewoof: ten dog breeds, hard to tell apart
    "n02086240": "Shih-Tzu", "n02087394": "Rhodesian ridgeback", "n02088364": "beagle",
    "n02089973": "English foxhound", "n02093754": "Border terrier",
    "n02096294": "Australian terrier", "n02099601": "golden retriever",
    "n02105641": "Old English sheepdog", "n02111889": "Samoyed", "n02115641": "dingo",
}


@dataclass
class Split:
    """All image files of a dataset, their labels and which ones are validation."""

    root: Path
    files: list[Path]        # sorted, train files first then valid files
    labels: np.ndarray       # int64 index into vocab, one per file
    is_valid: np.ndarray     # bool, one per file
    vocab: list[str]         # sorted label folder names

    @property
    def names(self) -> list[str]:
        return human_names(self.vocab)


def human_names(vocab: list[str]) -> list[str]:
    """WordNet ids -> readable names; other labels pass through unchanged."""
    return [WORDNET_NAMES.get(v, v) for v in vocab]


def image_files(folder: Path) -> list[Path]:
    """Every file with an image extension under `folder`, sorted, hidden files skipped."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in filenames:
            if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS:
                out.append(Path(dirpath) / f)
    return sorted(out)


def _find(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def scan_folder(root: str | os.PathLike, valid_pct: float | None = None, seed: int = 0) -> Split:
    """Find and label the images of `root` and split them (see the module docstring)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ResnetteError(f"image folder {root} does not exist; give a folder laid out as "
                            "<root>/<train|valid>/<label>/*.jpg or <root>/<label>/*.jpg")
    train_dir, valid_dir = _find(root, TRAIN_NAMES), _find(root, VALID_NAMES)
    if valid_pct is not None:
        if not 0.0 < valid_pct < 1.0:
            raise ResnetteError(f"valid_pct must be between 0 and 1, got {valid_pct}")
        files = _labelled(train_dir or root)
        rng = np.random.default_rng(seed)
        n_valid = max(1, int(round(len(files) * valid_pct)))
        is_valid = np.zeros(len(files), dtype=bool)
        is_valid[rng.permutation(len(files))[:n_valid]] = True
    elif train_dir is not None and valid_dir is not None:
        train, valid = _labelled(train_dir), _labelled(valid_dir)
        files = train + valid
        is_valid = np.array([False] * len(train) + [True] * len(valid))
    else:
        raise ResnetteError(f"{root} has no train/ and valid/ (or val/) folders; add them, or "
                            "pass valid_pct=0.2 (--valid-pct) for a seeded random split")
    if not files:
        raise ResnetteError(f"no images found under {root}; expected <label>/*.jpg|png files")
    label_names = [f.parent.name for f in files]
    vocab = sorted(set(label_names[i] for i in range(len(files)) if not is_valid[i]))
    if len(vocab) < 2:
        raise ResnetteError(f"the training images under {root} have {len(vocab)} class(es) "
                            f"({', '.join(vocab) or 'none'}); a classifier needs at least two label folders")
    index = {v: i for i, v in enumerate(vocab)}
    unknown = sorted(set(label_names) - set(index))
    if unknown:
        raise ResnetteError(f"validation labels {unknown[:5]} under {root} have no training "
                            "images; add training images for them or remove those folders")
    if is_valid.sum() == 0:
        raise ResnetteError(f"the validation split of {root} is empty; add images or use valid_pct")
    labels = np.array([index[n] for n in label_names], dtype=np.int64)
    order = np.argsort(is_valid, kind="stable")  # train first, each part in sorted file order
    return Split(root, [files[i] for i in order], labels[order], is_valid[order], vocab)


def _labelled(folder: Path) -> list[Path]:
    """Images exactly one level down (<folder>/<label>/file): the label is the parent."""
    return [f for f in image_files(folder) if f.parent.parent == folder]
