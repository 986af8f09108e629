"""What an extracted dataset must look like before it is marked complete: the layout that
`scan_folder` reads (data/folders.py), `<root>/<train>/<class>/<image>` and
`<root>/<valid>/<class>/<image>`.

A mirror (`$RESNETTE_URL_<NAME>`) may serve any archive: one with another top folder, only a
`train/`, images without class folders, or something else entirely. Checked only when it is
read, such an archive was marked complete, kept, and reused by every later run, each failing
in the loader with a message about the data rather than the download. Checked here, between
extracting and marking, it is refused once, removed, and fetched afresh next time.
"""
from __future__ import annotations

import os
from pathlib import Path

from resnette.data.folders import IMAGE_EXTENSIONS, TRAIN_NAMES, VALID_NAMES


def layout_problem(root: Path) -> str | None:
    """Why `root` is not a dataset laid out in train and valid class folders, or None.
    Cheap on a full dataset: it lists the two split folders and looks into one class
    folder of each for a first image, never walking every file."""
    splits = {}
    for kind, names in (("train", TRAIN_NAMES), ("valid", VALID_NAMES)):
        found = next((root / n for n in names if (root / n).is_dir()), None)
        if found is None:
            return (f"no {kind} folder ({' or '.join(n + '/' for n in names)}) in it; it holds "
                    f"{_listing(root)}")
        splits[kind] = _class_folders(found)
        if not splits[kind]:
            return f"{found.name}/ holds no class folders ({_listing(found)})"
        if not any(_has_image(found / c) for c in splits[kind][:20]):
            return f"the class folders of {found.name}/ hold no images"
    unknown = sorted(set(splits["valid"]) - set(splits["train"]))
    if unknown:
        return f"validation classes {unknown[:3]} have no training folder"
    return None


def _class_folders(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_dir(follow_symlinks=False)
                      and not e.name.startswith("."))


def _has_image(folder: Path) -> bool:
    with os.scandir(folder) as it:
        return any(Path(e.name).suffix.lower() in IMAGE_EXTENSIONS for e in it)


def _listing(folder: Path, n: int = 4) -> str:
    with os.scandir(folder) as it:
        names = sorted(e.name + ("/" if e.is_dir(follow_symlinks=False) else "") for e in it
                       if not e.name.startswith("."))
    if not names:
        return "nothing"
    return ", ".join(repr(x) for x in names[:n]) + (f" and {len(names) - n} more"
                                                    if len(names) > n else "")
