"""Any folder of images: find the files, label them by parent folder, split train/valid.

Layouts understood:
    <root>/<train>/<label>/*  and  <root>/<valid>/<label>/*    (the split comes from the folders)
    <root>/<label>/*  with valid_pct                              (a seeded random split)
where <train> is `train` or `training` and <valid> is `valid`, `val`, `validation` or
`testing` (fastai's MNIST names its folders training/testing). Other folders beside them
(e.g. mnist_tiny's unlabelled `test/`) are ignored. With `valid_pct` and split folders, only
the train folder is split, so the given validation set stays untouched for later use.

The scan reads exactly the layout's depth, so it always ends and never wanders:
- A symbolic link to a label folder is followed once: not when it leads to a folder already
  in the layout (a duplicate) or to the root, a split folder or one of their parents (a
  loop, e.g. a link to `.` or `..`). A link into a big folder elsewhere lists only that
  folder's own files, as a label folder's.
- Only regular files (or links to them) are used: a FIFO, socket or device named `x.jpg` is
  skipped without being opened, so it cannot block the scan or the decoder.
- Hidden files and folders (names starting with `.`) are skipped, as `ls` does.
- Label names are compared in Unicode NFC form: `café` typed on Linux (NFC) and `café`
  copied from a Mac (NFD) look identical, so they are one class, named in NFC.
- Images the layout does not use (in subfolders of a label folder, or beside the label
  folders) are counted, with the other skips, in one warning line.
Names need not be valid UTF-8: paths stay `Path`s (os.fsencode gives their bytes back).
"""
from __future__ import annotations

import os
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resnette.data.decode import printable
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
    """WordNet ids -> readable names; other labels pass through unchanged, except the raw
    bytes of a folder name that is not UTF-8, shown as \\xNN (names are for display; the
    vocab keeps the folder's real name)."""
    return [WORDNET_NAMES.get(v, v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
            for v in vocab]


def image_files(folder: Path, follow_links: bool = True) -> list[Path]:
    """Every regular file with an image extension under `folder` (recursively), sorted.

    For `predict` on a folder. Hidden files and folders are skipped; every folder is entered
    at most once by its real path, and a link to `folder` or one of its parents is not
    followed, so links to `.` or `..` can neither loop nor list an image twice.
    """
    start = os.path.realpath(folder)
    seen, out, todo = {start}, [], [Path(folder)]
    while todo:
        for entry in _entries(todo.pop()):
            if entry.is_dir():
                if entry.is_symlink() and not follow_links:
                    continue
                real = os.path.realpath(entry.path)
                if real not in seen and not _is_within(start, real):
                    seen.add(real)
                    todo.append(Path(entry.path))
            elif _is_image(entry.name) and entry.is_file():
                out.append(Path(entry.path))
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
    scan = _Scan(root)
    if valid_pct is not None:
        if not 0.0 < valid_pct < 1.0:
            raise ResnetteError(f"valid_pct must be between 0 and 1, got {valid_pct}")
        files, label_names = scan.labelled(train_dir or root)
        rng = np.random.default_rng(seed)
        n_valid = max(1, int(round(len(files) * valid_pct)))
        is_valid = np.zeros(len(files), dtype=bool)
        is_valid[rng.permutation(len(files))[:n_valid]] = True
    elif train_dir is not None and valid_dir is not None:
        (train, train_labels), (valid, valid_labels) = scan.labelled(train_dir), scan.labelled(valid_dir)
        files, label_names = train + valid, train_labels + valid_labels
        is_valid = np.array([False] * len(train) + [True] * len(valid))
    else:
        raise ResnetteError(f"{root} has no train/ and valid/ (or val/) folders; add them, or "
                            "pass valid_pct=0.2 (--valid-pct) for a seeded random split")
    scan.warn()
    if not files:
        raise ResnetteError(f"no images found under {root}; expected <label>/*.jpg|png files")
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


class _Scan:
    """One scan of a dataset: the real folders already listed and what was skipped, and why."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.taken: set[str] = set()   # real paths of the label folders listed so far
        self.skipped: dict[str, list[str]] = {}

    def labelled(self, folder: Path) -> tuple[list[Path], list[str]]:
        """Images exactly one level down (<folder>/<label>/file) and their labels (NFC)."""
        real_folder = os.path.realpath(folder)
        dirs, links = [], []
        for entry in _entries(folder):
            if entry.is_dir():
                (links if entry.is_symlink() else dirs).append(entry)
            elif _is_image(entry.name):
                self._skip("beside the label folders", entry.path)
        files, labels = [], []
        for entry in dirs + links:   # real folders first: a link never hides one
            real = os.path.realpath(entry.path)
            if real in self.taken or _is_within(self.real_root, real) or _is_within(real_folder, real):
                self._skip("linked folders already listed or leading up (loops)", entry.path)
                continue
            self.taken.add(real)
            label = unicodedata.normalize("NFC", entry.name)
            for f in self._files(Path(entry.path), nested=not entry.is_symlink()):
                files.append(f)
                labels.append(label)
        order = sorted(range(len(files)), key=lambda i: files[i])
        return [files[i] for i in order], [labels[i] for i in order]

    def _files(self, label_dir: Path, nested: bool) -> list[Path]:
        out = []
        for entry in _entries(label_dir):
            if entry.is_dir():
                if entry.is_symlink():
                    self._skip("linked folders inside a label folder (not followed)", entry.path)
                elif nested:
                    for f in image_files(Path(entry.path), follow_links=False):
                        self._skip("in subfolders of a label folder (not used)", str(f))
            elif _is_image(entry.name):
                if entry.is_file():
                    out.append(Path(entry.path))
                else:
                    self._skip("not regular files (FIFO, socket, device, broken link)", entry.path)
        return out

    def _skip(self, why: str, path: str) -> None:
        self.skipped.setdefault(why, []).append(path)

    def warn(self) -> None:
        """One warning line for everything the layout left out (nothing when nothing was)."""
        if not self.skipped:
            return
        parts = []
        for why, paths in self.skipped.items():
            example = printable(os.path.relpath(paths[0], self.root))
            parts.append(f"{len(paths)} {why}, e.g. {example}")
        warnings.warn(f"images left out under {printable(self.root)} (the layout is "
                      f"<label>/<image>): {'; '.join(parts)}", stacklevel=3)


def _entries(folder: Path | str) -> list[os.DirEntry]:
    """The visible entries of a folder, sorted by name; an unreadable folder has none."""
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError:
        return []


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _is_within(inner: str, outer: str) -> bool:
    """True when real path `inner` is `outer` or lies inside it (a link to `outer` loops)."""
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)
