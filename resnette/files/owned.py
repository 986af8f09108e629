"""What resnette made, recognised by one rule (its marker files), and the two things that rule
decides: where an --out may write, and what may be deleted."""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from resnette.files.reading import PathLike, _not_regular, open_fd
from resnette.utils import ResnetteError

# A run folder is what holds RUN_MARKER (written when train creates the folder); a cache entry
# what holds ENTRY_MARKER. Folders from before the markers: see `is_run_folder`/`is_entry`.
RUN_MARKER = ".resnette-run"
ENTRY_MARKER = ".resnette-entry"
LEGACY_RUN = ("config.toml", "classes.json")             # all of these, and one of:
LEGACY_RUN_WEIGHTS = ("checkpoint.pt", "model.safetensors", "metrics.csv")


def has_marker(folder: PathLike, marker: str) -> bool:
    """Whether `folder` (not a link) holds `marker` as a regular file (lstat: never followed)."""
    try:
        return (not os.path.islink(folder)
                and stat.S_ISREG(os.lstat(os.path.join(folder, marker)).st_mode))
    except OSError:
        return False


def write_marker(folder: PathLike, marker: str, text: str = "") -> None:
    """Mark `folder` as made by resnette (idempotent); a link or FIFO in its place is refused."""
    fd = open_fd(Path(folder) / marker, "marker", follow=False, flags=os.O_WRONLY | os.O_CREAT)
    try:
        if os.fstat(fd).st_size == 0 and text:
            os.write(fd, text.encode())
    finally:
        os.close(fd)


def is_run_folder(folder: PathLike) -> bool:
    """One rule for "this is a resnette run": the folder holds RUN_MARKER. A run made before
    the marker existed counts when it holds config.toml and classes.json and one of
    checkpoint.pt, model.safetensors, metrics.csv (regular files, links not followed): a
    project folder that merely holds a config.toml is not a run. Such a run gets its marker
    the next time train, lr-find, evaluate, export or report lock it (run/lock.py)."""
    if has_marker(folder, RUN_MARKER):
        return True
    return (all(has_marker(folder, n) for n in LEGACY_RUN)
            and any(has_marker(folder, n) for n in LEGACY_RUN_WEIGHTS))


def is_entry(folder: PathLike) -> bool:
    """A decode-cache entry: holds ENTRY_MARKER, or (built before it) meta.json and images.npy."""
    return has_marker(folder, ENTRY_MARKER) or (has_marker(folder, "meta.json")
                                               and has_marker(folder, "images.npy"))


def output(path: PathLike, verb: str, *, own: tuple[str, ...] = (), makes_parents: bool = False,
           folder: bool = False) -> Path:
    """Where `verb` may write the file the user named with -o/--out, or one line why not:
    never a run folder's own files (inside a run only the names in `own`, fnmatch patterns
    at the run's top, such as report.html), never a folder, FIFO, device or link, and a
    missing parent folder only when the command makes its parents (a typo in --out must not
    create a tree). `folder`: the output is a folder (an existing one is written into).
    Returns the path as given, made absolute."""
    import fnmatch

    if not os.fspath(path).strip():   # Path("") is ".": an empty -o must not mean "here"
        raise ResnetteError(f"{verb}: the output name is empty; give a file name")
    out = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    for shown in dict.fromkeys((out, Path(os.path.realpath(out)))):
        for run in shown.parents:
            if is_run_folder(run):
                top = shown.relative_to(run).parts[0]
                if not any(fnmatch.fnmatch(top, p) for p in own):
                    instead = f" (or no --out: {verb} writes {own[0]} in the run)" if own else ""
                    raise ResnetteError(f"{out} is inside the run folder {run}: {verb} would "
                                        "write over the run's files there; choose an --out "
                                        f"outside it{instead}")
                break
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode) and not folder:
        raise ResnetteError(f"{out} is a folder; give the name of a file for {verb} to write")
    if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        raise _not_regular(out, "--out", st.st_mode)
    if not out.parent.is_dir() and not makes_parents:
        raise ResnetteError(f"the folder {out.parent} does not exist; create it first or give "
                            f"another --out for {verb}")
    return out


def check_inside_run(path: PathLike) -> None:
    """A file written inside a run folder stays inside it: a folder of the run (plots/,
    evaluations/, export/) that is a link out of it is refused, so a run received from
    someone else cannot make resnette write elsewhere. The run folder itself may be a link
    (a run kept on another disk)."""
    path = Path(os.path.abspath(path))
    for run in path.parents:
        if is_run_folder(run):
            if not Path(os.path.realpath(path.parent)).is_relative_to(os.path.realpath(run)):
                raise ResnetteError(f"{path.parent} is a link out of the run folder {run}; "
                                    "resnette writes a run's files only inside it: replace the "
                                    "link with a folder")
            return


def make_folder(path: PathLike, what: str) -> Path:
    """The folder `path`, made if missing (its parent must exist), checked before a command
    writes anything: a FIFO, file or link out of the run in its place is one line, so the
    command fails before it changes the run, not half way."""
    path = Path(path)
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) and not (stat.S_ISLNK(st.st_mode) and path.is_dir()):
        kind = "a file" if stat.S_ISREG(st.st_mode) else "not a folder"
        raise ResnetteError(f"{path} is {kind}; resnette keeps {what} there: move it away")
    check_inside_run(path / "x")
    return path


def remove_owned(path: PathLike, marker: str = RUN_MARKER) -> str:
    """Delete what resnette made at `path`: a link is unlinked (never followed); a folder only
    when it holds `marker` (RUN_MARKER, ENTRY_MARKER) or is such a folder from before markers.
    Returns what was removed, for the message; anything else is one line and stays."""
    path = Path(path)
    if path.is_symlink():
        os.unlink(path)
        return f"the link {path}"
    owned = is_run_folder(path) if marker == RUN_MARKER else is_entry(path)
    if not owned:
        raise ResnetteError(f"{path} was not made by resnette (no {marker} in it); refusing to "
                            "delete it")
    shutil.rmtree(path)
    return str(path)


def remove_temporary(path: PathLike) -> None:
    """Delete a temporary folder this program made (a build's `.<key>.*.tmp`, a run moved aside,
    a new run that never started); quiet when gone. A link is removed as a link."""
    path = Path(path)
    if path.is_symlink():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)
