"""Named datasets: where they live, how they are fetched, verified and unpacked safely.

A named dataset is downloaded once into the cache folder, checked against the size and MD5
that fastai recorded for the same archive, extracted so that nothing can land outside the
target folder, and from then on used offline: a finished extraction is marked by a file, and
a marked folder is returned without touching the network.

The cache folder is `data_dir`, else `$RESNETTE_HOME`, else `~/.cache/resnette`. A mirror or a
local copy replaces the address with `url=` or `$RESNETTE_URL_<NAME>` (e.g.
`RESNETTE_URL_IMAGENETTE_160=file:///mnt/imagenette2-160.tgz`).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from resnette.utils import ResnetteError


@dataclass(frozen=True)
class Dataset:
    """A named archive: its address, fastai's recorded size and MD5, and its top folder."""

    url: str
    size: int | None
    md5: str | None
    folder: str


_S3 = "https://s3.amazonaws.com/fast-ai-imageclas/"
_SAMPLE = "https://s3.amazonaws.com/fast-ai-sample/"

# Sizes and MD5s are the ones fastai records in fastai/data/checks.txt for these same URLs.
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

_DONE = ".resnette-complete"  # written last: a folder without it is an interrupted extraction

# Decompression bombs: image archives barely compress (JPEG/PNG are compressed already:
# Imagenette's .tgz is 1.0x its contents, MNIST's PNGs ~1.5x), while gzip can inflate 1000x
# and bzip2 far more. An archive may unpack to at most this multiple of its own size (plus a
# little room for tiny archives) before it is refused, and never beyond the free disk space.
MAX_RATIO = 50
RATIO_ALLOWANCE = 64 * 2**20


def resnette_home(data_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: `data_dir`, else `$RESNETTE_HOME`, else `~/.cache/resnette`."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("RESNETTE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "resnette"


def url_env_var(name: str) -> str:
    """`imagenette-160` -> `RESNETTE_URL_IMAGENETTE_160`."""
    return "RESNETTE_URL_" + name.upper().replace("-", "_")


def untar_data(name: str, data_dir: str | os.PathLike | None = None, url: str | None = None,
               md5: str | None = None, retries: int = 4, timeout: float = 30.0,
               backoff: float = 1.0) -> Path:
    """Return the extracted folder of dataset `name`, downloading it first if needed.

    With a URL override (`url` or `$RESNETTE_URL_<NAME>`) the recorded size/MD5 describe a
    different file, so only an `md5` given here is checked.
    """
    if name not in DATASETS:
        raise ResnetteError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    ds = DATASETS[name]
    home = resnette_home(data_dir)
    target = home / ds.folder
    if (target / _DONE).exists():
        return target  # offline reuse: no network call at all
    url = url or os.environ.get(url_env_var(name))
    size, want_md5 = (ds.size, md5 or ds.md5) if url is None else (None, md5)
    url = url or ds.url
    archive = home / "downloads" / PurePosixPath(urllib.request.urlparse(url).path).name
    if not archive.exists():
        download(url, archive, size=size, md5=want_md5, retries=retries, timeout=timeout,
                 backoff=backoff)
    try:
        extract_tar(archive, home, ds.folder)
    except ResnetteError:
        archive.unlink(missing_ok=True)  # a bad archive must not be reused by the next call
        raise
    (target / _DONE).write_text(url + "\n")
    return target


def download(url: str, dest: Path, size: int | None = None, md5: str | None = None,
             retries: int = 4, timeout: float = 30.0, backoff: float = 1.0) -> Path:
    """Fetch `url` to `dest` atomically: resume with HTTP Range, retry with backoff, verify.

    Bytes accumulate in `dest.part`; a cut connection resumes from where it stopped. Only a
    verified file is renamed to `dest`, so `dest` existing means it is whole and correct.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, timeout)
            break
        except urllib.error.HTTPError as e:
            if e.code == 416:  # the partial file is already complete, or stale: start over
                part.unlink(missing_ok=True)
            elif e.code < 500:
                part.unlink(missing_ok=True)
                raise ResnetteError(f"download of {url} failed: HTTP {e.code} {e.reason}; "
                                    "check the address (or the RESNETTE_URL_* override)") from None
            err: Exception = e
        except (urllib.error.URLError, OSError, _ShortRead) as e:
            err = e
        if attempt == retries:
            reason = getattr(err, "reason", err)
            if isinstance(reason, (socket.timeout, TimeoutError)):
                reason = f"no data for {timeout:g} s (timed out)"
            raise ResnetteError(f"download of {url} failed after {retries + 1} tries: {reason}; "
                                "check the network or use a mirror via url= / RESNETTE_URL_*")
        time.sleep(backoff * 2 ** attempt)
    _verify(part, url, size, md5)
    os.replace(part, dest)
    return dest


class _ShortRead(Exception):
    """The server closed the connection before sending every byte it announced."""


def _fetch(url: str, part: Path, timeout: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "resnette"})
    if have and not url.startswith("file:"):
        req.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        status = getattr(resp, "status", None) or 200
        if status != 206:  # the server ignored Range (or there was none): start from zero
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        mode = "ab" if have else "wb"
        with open(part, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                         desc=part.name[:-5], disable=None, leave=False) as bar:
            got = have
            while chunk := resp.read(1 << 20):
                f.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
    if total is not None and got < total:
        raise _ShortRead(f"connection closed after {got} of {total} bytes")


def _verify(path: Path, url: str, size: int | None, md5: str | None) -> None:
    got_size = path.stat().st_size
    if size is not None and got_size != size:
        path.unlink(missing_ok=True)
        raise ResnetteError(f"{url} gave {got_size} bytes, expected {size}; the file was removed, "
                            "run again to download it afresh")
    if md5 is not None:
        h = hashlib.md5()
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
        if h.hexdigest() != md5:
            path.unlink(missing_ok=True)
            raise ResnetteError(f"{url} has MD5 {h.hexdigest()}, expected {md5}; the file was "
                                "removed, run again or check the mirror")


def extract_tar(archive: Path, home: Path, folder: str) -> Path:
    """Extract `archive` into `home`, refusing the whole archive if any entry could escape.

    Every member is checked before anything is written: no absolute paths, no `..`, no
    links pointing outside, no device files or FIFOs, and a total size within MAX_RATIO of
    the archive's and within the free space (read header by header, so a bomb is refused
    before its first huge member is inflated). Extraction goes to a temporary folder beside
    the target and is renamed into place, so a kill mid-way leaves no half dataset.
    """
    try:
        with tarfile.open(archive) as tar:
            members = _checked_members(tar, archive, home)
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder}.", dir=home))
            try:
                kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=members, **kw)
                src = tmp / folder if (tmp / folder).is_dir() else tmp
                target = home / folder
                if target.exists():
                    shutil.rmtree(target)
                os.replace(src, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except (tarfile.TarError, EOFError, OSError) as e:
        if getattr(e, "errno", None) == 28:  # ENOSPC
            raise ResnetteError(f"disk full while extracting {archive}; free space in {home}") from None
        raise ResnetteError(f"{archive} is not a readable tar archive ({e}); it was removed, "
                            "run again to download it afresh") from None
    return home / folder


def _checked_members(tar: tarfile.TarFile, archive: Path, home: Path) -> list[tarfile.TarInfo]:
    limit = MAX_RATIO * archive.stat().st_size + RATIO_ALLOWANCE
    free = shutil.disk_usage(home).free
    members, total = [], 0
    for m in tar:
        _check_member(m, archive)
        total += m.size
        if total > limit:
            raise ResnetteError(f"refusing to extract {archive.name}: it would unpack to more than "
                                f"{total / 2**20:.0f} MiB, over {MAX_RATIO}x its "
                                f"{archive.stat().st_size / 2**20:.1f} MiB (a decompression bomb?); "
                                "nothing was extracted")
        if total > free:
            raise ResnetteError(f"{archive.name} needs more than {total / 2**20:.0f} MiB but {home} "
                                f"has {free / 2**20:.0f} MiB free; free space or use --data-dir")
        members.append(m)
    return members


def _check_member(m: tarfile.TarInfo, archive: Path) -> None:
    def refuse(why: str) -> ResnetteError:
        return ResnetteError(f"refusing to extract {archive.name}: entry {m.name!r} {why}; "
                             "the archive may be malicious, nothing was extracted")

    p = PurePosixPath(m.name)
    if p.is_absolute() or m.name.startswith(("/", "\\")) or (p.parts and ":" in p.parts[0]):
        raise refuse("has an absolute path")
    if ".." in p.parts:
        raise refuse("climbs out with '..'")
    if m.isdev() or m.isfifo():
        raise refuse("is a device file or FIFO")
    if m.issym():
        link = PurePosixPath(m.linkname)
        if link.is_absolute() or not _stays_inside(p.parent / link):
            raise refuse(f"is a symlink pointing outside ({m.linkname})")
    if m.islnk():
        link = PurePosixPath(m.linkname)
        if link.is_absolute() or not _stays_inside(link):
            raise refuse(f"is a hard link pointing outside ({m.linkname})")


def _stays_inside(p: PurePosixPath) -> bool:
    depth = 0
    for part in p.parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return False
    return True
