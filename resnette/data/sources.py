"""Named datasets: where they live, how they are fetched, verified and unpacked safely.

A named dataset is downloaded once into the cache folder, verified exactly as its publisher
records it, extracted so that nothing can land outside the target folder (data/extract.py),
and from then on used offline: a finished extraction is marked by a file, and a marked folder
is returned without touching the network.

Verification. fastai records each archive in fastai/data/checks.txt as `url: [size, md5]`,
where the MD5 is of the file's FIRST MiB only (fastdownload's `path_stats`:
`hashlib.md5(f.read(2**20))`), and a download passes when both match (`path_stats(f) ==
checks[url]`). `path_stats` here computes the same pair. A whole-file MD5 would refuse every
archive over 1 MiB. A user-given address (`url=` or `$RESNETTE_URL_<NAME>`) is a different
file as far as fastai's record knows, so it is checked only against a full-file SHA-256 the
user supplies: `sha256=` here, or pip's URL-fragment form, which also works from the command
line: `RESNETTE_URL_IMAGENETTE_160=https://mirror/imagenette2-160.tgz#sha256=<64 hex digits>`.

The cache folder is `data_dir`, else `$RESNETTE_HOME`, else `~/.cache/resnette`.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from resnette.display import term
from resnette.data import fetch
from resnette.data.extract import MAX_RATIO, RATIO_ALLOWANCE, BadArchive, extract_tar
from resnette.data.layout import layout_problem
from resnette.data.offline import copy_advice, url_env_var
from resnette.files import open_dir, open_read
from resnette.utils import ResnetteError

__all__ = ["DATASETS", "MAX_RATIO", "RATIO_ALLOWANCE", "Dataset", "download", "extract_tar",
           "path_stats", "resnette_home", "untar_data", "url_env_var"]


@dataclass(frozen=True)
class Dataset:
    """A named archive: its address, fastai's record of it and its top folder.

    `size` is the whole file's length in bytes and `md5` the MD5 of its first MiB (fastai's
    checks.txt pair, compared with `path_stats`).
    """

    url: str
    size: int | None
    md5: str | None
    folder: str


_S3 = "https://s3.amazonaws.com/fast-ai-imageclas/"
_SAMPLE = "https://s3.amazonaws.com/fast-ai-sample/"

# (size, MD5 of the first MiB) exactly as fastai/data/checks.txt records these same URLs.
DATASETS: dict[str, Dataset] = {
    "imagenette-160": Dataset(_S3 + "imagenette2-160.tgz", 99003388, "c475f8f7617a200ba35b9facc48443c3", "imagenette2-160"),
    "imagenette-320": Dataset(_S3 + "imagenette2-320.tgz", 341663724, "1f1f74f133caff120e575856659b87a2", "imagenette2-320"),
    "imagenette": Dataset(_S3 + "imagenette2.tgz", 1557161267, "2c774ecb40005b35d7937d50f5d42336", "imagenette2"),
    "imagewoof-160": Dataset(_S3 + "imagewoof2-160.tgz", 92612825, "3559b194123981a540b87132dbda412f", "imagewoof2-160"),
    "imagewoof-320": Dataset(_S3 + "imagewoof2-320.tgz", 328387740, "7a1fd92672a559a85de76e4810a20c21", "imagewoof2-320"),
    "imagewoof": Dataset(_S3 + "imagewoof2.tgz", 1343715595, "2cc1c1e36e20cb6fd24ffb978edcb487", "imagewoof2"),
    "mnist": Dataset(_S3 + "mnist_png.tgz", 15683414, "03639f83c4e3d19e0a3a53a8a997c487", "mnist_png"),
    "mnist-sample": Dataset(_SAMPLE + "mnist_sample.tgz", 3214948, "2dbc7ec6f9259b583af0072c55816a88", "mnist_sample"),
    "mnist-tiny": Dataset(_SAMPLE + "mnist_tiny.tgz", 342207, "56143e8f24db90d925d82a5a74141875", "mnist_tiny"),
}

_DONE = ".resnette-complete"  # in every folder we extract, before it is renamed into place

def resnette_home(data_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: `data_dir`, else `$RESNETTE_HOME`, else `~/.cache/resnette`."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("RESNETTE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "resnette"


def untar_data(name: str, data_dir: str | os.PathLike | None = None, url: str | None = None,
               sha256: str | None = None, retries: int = 4, timeout: float = 30.0,
               backoff: float = 1.0, max_bytes: int | str | None = None,
               advice: str | None = None) -> Path:
    """Return the extracted folder of dataset `name`, downloading it first if needed.

    The publisher's address is checked against fastai's record (size + MD5 of the first
    MiB). A user-given address (`url` or `$RESNETTE_URL_<NAME>`) is checked against a
    full-file SHA-256 given as `sha256=` or as the address's `#sha256=<hex>` fragment, and
    is not checked when neither is given (fastai's record describes a different address);
    it may send at most `max_bytes` ($RESNETTE_MAX_DOWNLOAD, default 2 GiB). A failed
    fetch ends with `advice` (default: `copy_advice`'s, for where the call runs).
    """
    if name not in DATASETS:
        raise ResnetteError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    ds = DATASETS[name]
    home = resnette_home(data_dir)
    target = home / ds.folder
    var = url_env_var(name)
    if (target / _DONE).exists():   # offline reuse: no network call at all
        wrong = layout_problem(target)   # marked by a resnette that did not check the layout
        if wrong:
            raise ResnetteError(f"{target} is not laid out as the dataset {name} is ({wrong}); "
                                f"remove that folder and check {var} if you set it, then run "
                                "again to fetch it afresh")
        return target
    given = url or os.environ.get(var)
    if given is None:
        url, stats = ds.url, ((ds.size, ds.md5) if ds.size is not None and ds.md5 else None)
        if sha256 is not None:
            sha256 = _hex(sha256, 64, "sha256=")
    else:
        url, sha256 = _split_sha256(given, sha256)
        stats = None
    if os.path.lexists(target):   # not ours (ours carry the mark from the moment they appear)
        raise ResnetteError(f"{target} exists but is not a dataset resnette extracted (no {_DONE} "
                            f"in it), so it is left as it is; move it away, or {_fix(data_dir)}")
    _usable_home(home, data_dir)
    with _one_at_a_time(home / "downloads", name):
        if (target / _DONE).exists():
            return target   # the process we waited for fetched it
        return _fetch_and_extract(ds, home, url, stats, sha256, data_dir, dict(
            retries=retries, timeout=timeout, backoff=backoff, max_bytes=max_bytes,
            advice=advice or copy_advice(name)))


@contextlib.contextmanager
def _one_at_a_time(downloads: Path, name: str) -> Iterator[None]:
    """An exclusive flock on the downloads folder itself (no lock file to leave behind): two
    processes fetching at once would append to one `.part` file and extract over each other.
    The second waits, then finds the dataset ready (the kernel drops a dead holder's lock)."""
    import fcntl

    fd = open_dir(downloads)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process that is fetching {name} into {term(downloads.parent)}",
                  file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fetch_and_extract(ds: Dataset, home: Path, url: str, stats: tuple[int, str] | None,
                       sha256: str | None, data_dir: object, how: dict) -> Path:
    target = home / ds.folder
    archive = home / "downloads" / _archive_name(url, ds.folder)
    if archive.exists() and _mismatch(archive, stats, sha256) is not None:
        archive.unlink()  # an archive from an older check: fetch the one the check describes
    if not archive.exists():
        download(url, archive, stats=stats, sha256=sha256, **how)
    try:
        extract_tar(archive, home, ds.folder, marker=(_DONE, url + "\n"), layout=layout_problem)
    except BadArchive:
        archive.unlink(missing_ok=True)  # a bad archive must not be reused by the next call
        raise
    return target


def _fix(data_dir: object) -> str:
    return ("give --data-dir (data_dir=)" if data_dir is not None else "set RESNETTE_HOME to") + \
        " a writable folder on a disk with room"


def _usable_home(home: Path, data_dir: object) -> None:
    """The dataset folder can hold downloads, or one line says why not and what to do.

    A folder the user names must have an existing parent (a typo, or a disk that is not
    mounted, must not create a tree elsewhere); the default ~/.cache/resnette is created.
    """
    blocker = next((p for p in (home / "downloads", home, *home.parents)
                    if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ResnetteError(f"cannot keep datasets in {home}: {blocker} is a file, not a folder; "
                            f"move it or {_fix(data_dir)}")
    named = data_dir is not None or os.environ.get("RESNETTE_HOME")
    if named and not home.exists() and not home.parent.is_dir():
        raise ResnetteError(f"cannot keep datasets in {home}: {home.parent} does not exist; "
                            f"create it, or {_fix(data_dir)}")
    try:
        (home / "downloads").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ResnetteError(f"cannot keep datasets in {home} ({e.strerror}); {_fix(data_dir)}") from None
    for folder in (home, home / "downloads"):
        if not os.access(folder, os.W_OK | os.X_OK):
            why = os.strerror(errno.EROFS if _read_only(folder) else errno.EACCES)
            raise ResnetteError(f"cannot keep datasets in {home}: {folder} is not writable "
                                f"({why}); {_fix(data_dir)}")


def _read_only(folder: Path) -> bool:
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)


def _archive_name(url: str, folder: str) -> str:
    """The URL's file name when it is a plain one, else `<folder>.tgz` (tarfile reads any
    compression): `http://host/`, `.../..` or a 300-byte name cannot become a path here."""
    try:
        name = PurePosixPath(urllib.request.urlparse(url).path).name
    except ValueError as e:   # e.g. "Invalid IPv6 URL": said here, before any download
        raise ResnetteError(f"{url!r} is not an address resnette can download ({e}); give an "
                            "http(s):// or file:// address") from None
    ok = re.fullmatch(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,199}", name) is not None
    return name if ok else f"{folder}.tgz"


def _hex(value: str, n: int, what: str) -> str:
    v = value.strip().lower()
    if len(v) != n or any(c not in "0123456789abcdef" for c in v):
        raise ResnetteError(f"{what} needs {n} hexadecimal digits, got {value!r}")
    return v


def _split_sha256(url: str, sha256: str | None) -> tuple[str, str | None]:
    """`https://m/x.tgz#sha256=<hex>` -> (`https://m/x.tgz`, `<hex>`), as pip reads it."""
    base, _, fragment = url.partition("#")
    from_url = None
    if fragment:
        key, _, value = fragment.partition("=")
        if key.lower() != "sha256":
            raise ResnetteError(f"{url}: the only address fragment understood is "
                                "#sha256=<64 hex digits> (the whole file's SHA-256)")
        from_url = _hex(value, 64, "#sha256=")
    if sha256 is not None:
        sha256 = _hex(sha256, 64, "sha256=")
        if from_url is not None and from_url != sha256:
            raise ResnetteError(f"two different SHA-256s for {base}: {from_url} in the address and "
                                f"{sha256} given as sha256=; keep one")
    return base, sha256 or from_url


def path_stats(path: str | os.PathLike) -> tuple[int, str]:
    """(size in bytes, MD5 of the first MiB): the pair fastai records per archive.

    The same definition as fastdownload's `path_stats`, so fastai's checks.txt entries can
    be compared directly. It reads at most 1 MiB, so checking a 1.5 GB archive is instant.
    """
    with open_read(path, "archive") as f:
        first = f.read(2**20)
    return os.path.getsize(path), hashlib.md5(first).hexdigest()


def download(url: str, dest: Path, stats: tuple[int, str] | None = None,
             sha256: str | None = None, retries: int = 4, timeout: float = 30.0,
             backoff: float = 1.0, max_bytes: int | str | None = None,
             advice: str = "use a mirror via url= / RESNETTE_URL_<NAME>") -> Path:
    """Fetch `url` to `dest` atomically: bounded, resumed with HTTP Range, retried, verified.

    `stats` is fastai's (size, MD5 of the first MiB) pair (see `path_stats`); `sha256` the
    whole file's SHA-256. Bytes accumulate in `dest.part` and never exceed the recorded size,
    or without one the cap `max_bytes` / $RESNETTE_MAX_DOWNLOAD (data/fetch.py: what is
    retried, what is reported at once). Only a verified file is renamed to `dest`, so `dest`
    existing means it is whole and correct; a file failing either check is deleted.
    """
    dest = Path(dest)
    part = fetch.download(url, dest, stats, retries=retries, timeout=timeout, backoff=backoff,
                          max_bytes=max_bytes, advice=advice)
    _verify(part, url, stats, sha256)
    os.replace(part, dest)
    return dest


def _verify(path: Path, url: str, stats: tuple[int, str] | None, sha256: str | None) -> None:
    why = _mismatch(path, stats, sha256)
    if why is not None:
        path.unlink(missing_ok=True)
        raise ResnetteError(f"{url} {why}; the file was removed, run again to download it "
                            "afresh or check the mirror")


def _mismatch(path: Path, stats: tuple[int, str] | None, sha256: str | None) -> str | None:
    """What about `path` contradicts its checks, or None when it passes all of them."""
    if stats is not None:
        size, md5 = path_stats(path)
        if size != stats[0]:
            return f"gave {size} bytes, expected {stats[0]} (fastai's record)"
        if md5 != stats[1]:
            return (f"has first-MiB MD5 {md5}, expected {stats[1]} (fastai's record: the MD5 "
                    "of the file's first 2**20 bytes)")
    if sha256 is not None:
        h = hashlib.sha256()
        with open_read(path, "archive") as f:
            while block := f.read(1 << 22):
                h.update(block)
        if h.hexdigest() != sha256:
            return f"has SHA-256 {h.hexdigest()}, expected {sha256}"
    return None
