"""Safe, single-pass extraction of a downloaded dataset archive.

One pass: every member is checked just before it is written, header by header, so a gzip
stream is inflated once (a separate check pass followed by `extractall` re-inflates the whole
archive, because seeking back in a gzip stream restarts it from byte 0). The extraction goes
to a temporary folder beside the target and is renamed into place only when every member
passed, so a refusal, a full disk or a kill mid-way leaves no half dataset.

Links: where `tarfile` has extraction filters (Python 3.11.4+, 3.12+) the `data` filter
judges them against the real paths on disk; where it does not, every link is refused, since
checking link targets by name alone is unsound (`a -> .` then `a/b -> ..` escapes) and the
named datasets contain no links at all.
"""
from __future__ import annotations

import errno
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from resnette.files import open_read, remove_temporary, umask_mode, write_text
from resnette.utils import ResnetteError

# Decompression bombs: image archives barely compress (JPEG/PNG are compressed already:
# Imagenette's .tgz is 1.0x its contents, MNIST's PNGs ~1.5x), while gzip can inflate 1000x
# and bzip2 far more. An archive may unpack to at most this multiple of its own size (plus a
# little room for tiny archives) before it is refused, and never beyond the free disk space.
MAX_RATIO = 50
RATIO_ALLOWANCE = 64 * 2**20


class BadArchive(ResnetteError):
    """The archive itself is at fault (unreadable, malicious, a bomb): it must not be reused.
    Other failures (a full or read-only disk here) keep the verified download."""


def extract_tar(archive: Path, home: Path, folder: str,
                marker: tuple[str, str] | None = None,
                layout: Callable[[Path], str | None] | None = None) -> Path:
    """Extract `archive` into `home / folder`, refusing the whole archive if any entry could
    escape, is a device or FIFO, or would take the total over the bomb or free-space limits,
    or if `layout` finds something wrong with what it unpacked (it says what, or None).

    The size limits are checked from each header before its data is inflated, so a bomb is
    refused before its first huge member is written.
    """
    archive, home = Path(archive), Path(home)
    has_filter = hasattr(tarfile, "data_filter")  # read at call time: Python 3.11.4+/3.12+
    try:
        with open_read(archive, "archive") as f, tarfile.open(fileobj=f) as tar:
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder}.", dir=home))
            try:
                members = _checked(tar, archive, home, links_allowed=has_filter)
                if has_filter:
                    tar.extractall(tmp, members=members, filter="data")
                else:
                    tar.extractall(tmp, members=members)
                _drain(tar, archive, limit=MAX_RATIO * archive.stat().st_size + RATIO_ALLOWANCE)
                src = tmp / folder if (tmp / folder).is_dir() else tmp
                wrong = layout(src) if layout is not None else None
                if wrong:   # before the marker: never complete, never reused
                    raise BadArchive(f"refusing {archive.name}: it is not laid out as the "
                                     f"dataset {folder} is ({wrong}); it was removed, nothing "
                                     "was kept: check the archive's address")
                if marker is not None:   # inside before the rename: complete the moment it appears
                    write_text(src / marker[0], marker[1])
                os.chmod(src, umask_mode(0o777))   # mkdtemp's 0700: as mkdir would make it
                target = home / folder
                if target.exists() or target.is_symlink():
                    remove_temporary(target)   # the dataset this replaces (a link: unlinked)
                os.replace(src, target)
            finally:
                remove_temporary(tmp)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:  # FilterError: a TarError
        raise _explain(e, archive, home) from None
    return home / folder


def _drain(tar: tarfile.TarFile, archive: Path, limit: int) -> None:
    """Read the compressed stream to its end. tarfile stops quietly at the first damaged
    header after the first member, so a corrupted or truncated .tgz would extract in part
    and look complete; gzip, bzip2 and xz check their CRC and length only at the end."""
    left = limit
    while block := tar.fileobj.read(1 << 20):   # type: ignore[union-attr]
        left -= len(block)
        if left < 0:
            raise BadArchive(f"refusing to extract {archive.name}: data after its last entry "
                             "unpacks beyond the size limit (a decompression bomb?)")


def _explain(e: Exception, archive: Path, home: Path) -> ResnetteError:
    filter_error = getattr(tarfile, "FilterError", None)
    if filter_error is not None and isinstance(e, filter_error):
        member = getattr(e, "tarinfo", None)
        name = member.name if member is not None else "?"
        return BadArchive(f"refusing to extract {archive.name}: entry {name!r} {e}; the "
                          "archive may be malicious, nothing was extracted")
    code = getattr(e, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return ResnetteError(f"disk full while extracting {archive}; nothing was extracted, the "
                             f"archive is kept; free space in {home} or choose another folder")
    if code == errno.ENAMETOOLONG:
        return BadArchive(f"refusing to extract {archive.name}: an entry's name is too long for "
                          f"this file system ({getattr(e, 'filename', '')!s:.80}...); it was removed")
    if code is not None and not isinstance(e, tarfile.TarError):  # a local file error, not the data
        where = getattr(e, "filename", None) or home
        return ResnetteError(f"cannot extract {archive.name} into {home}: {where} "
                             f"({e.strerror or e}); nothing was extracted, the archive is kept; "
                             "make it writable or choose another folder")
    why = "; ".join(line.strip(" -") for line in str(e).splitlines() if line.strip())
    return BadArchive(f"{archive} is not a readable tar archive ({why}); it was removed, "
                      "run again to download it afresh")


def _checked(tar: tarfile.TarFile, archive: Path, home: Path,
             links_allowed: bool) -> Iterator[tarfile.TarInfo]:
    """Yield each member after checking it, while `extractall` consumes them one by one."""
    size = archive.stat().st_size
    limit = MAX_RATIO * size + RATIO_ALLOWANCE
    free = shutil.disk_usage(home).free
    total = 0
    for m in tar:
        _check_member(m, archive, links_allowed)
        total += m.size
        if total > limit:
            raise BadArchive(f"refusing to extract {archive.name}: it would unpack to more than "
                                f"{total / 2**20:.0f} MiB, over {MAX_RATIO}x its "
                                f"{size / 2**20:.1f} MiB (a decompression bomb?); "
                                "nothing was extracted")
        if total > free:
            raise ResnetteError(f"{archive.name} needs more than {total / 2**20:.0f} MiB but {home} "
                                f"has {free / 2**20:.0f} MiB free; free space or use --data-dir")
        if not links_allowed:  # what the data filter would do: no set-id bits, owner may write
            m.mode = (m.mode & 0o755) | (0o700 if m.isdir() else 0o600)
        yield m


def _check_member(m: tarfile.TarInfo, archive: Path, links_allowed: bool) -> None:
    def refuse(why: str) -> ResnetteError:
        return BadArchive(f"refusing to extract {archive.name}: entry {m.name!r} {why}; "
                             "the archive may be malicious, nothing was extracted")

    p = PurePosixPath(m.name)
    if p.is_absolute() or m.name.startswith(("/", "\\")) or (p.parts and ":" in p.parts[0]):
        raise refuse("has an absolute path")
    if ".." in p.parts:
        raise refuse("climbs out with '..'")
    if m.isdev() or m.isfifo():
        raise refuse("is a device file or FIFO")
    if (m.issym() or m.islnk()) and not links_allowed:
        raise refuse(f"is a link (to {m.linkname!r}); links are refused where tarfile has no "
                     "extraction filters (Python < 3.11.4)")
