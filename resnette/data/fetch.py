"""Bounded downloads: every byte counted, every failure sorted into 'try again' or 'say why'.

A download never writes more than it should: the size fastai records for a named archive,
else the length the server announces, and never more than a cap for an address that states
no size (`DEFAULT_MAX_BYTES`, 2 GiB: over the largest named archive, imagenette2.tgz at
1.45 GiB; `RESNETTE_MAX_DOWNLOAD=8G` or `max_bytes=` raises it). A server that streams
without end, or a `file://` address naming a FIFO or a device, is stopped at that bound.
The disk's free space is checked against the expected length before the first byte.

Failures are of two kinds. Transient ones (a timeout, a reset connection, HTTP 5xx, 408 or
429, a DNS server that did not answer) are retried with backoff, and the partial file is
kept when the next attempt can resume it (HTTP Range). Permanent ones are reported at once:
HTTP 4xx, a host name that does not exist, a local file that is missing or not a regular
file, and any error writing the file here (disk full, read-only, no permission, the file
size limit), which is never blamed on the network. A partial file is then removed.
"""
from __future__ import annotations

import errno
import http.client
import os
import re
import shutil
import socket
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path

from resnette.display import size as size_text
from resnette.files import open_write
from resnette.utils import ResnetteError

DEFAULT_MAX_BYTES = 2 * 2**30
MAX_ENV = "RESNETTE_MAX_DOWNLOAD"
_RETRY_HTTP = {408, 429}   # and every 5xx
_NO_SUCH_HOST = {getattr(socket, n) for n in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, n)}


def max_download_bytes(value: int | str | None = None) -> int:
    """The cap for an address with no recorded size: `value`, else $RESNETTE_MAX_DOWNLOAD
    (bytes, or with a K/M/G/T suffix: `8G`), else `DEFAULT_MAX_BYTES`."""
    if value is None:
        value = os.environ.get(MAX_ENV) or DEFAULT_MAX_BYTES
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(value), re.IGNORECASE)
    n = int(float(m[1]) * 1024 ** (" kmgt".index(m[2].lower() or " "))) if m else 0
    if n <= 0:
        raise ResnetteError(f"{MAX_ENV} (or max_bytes=) must be a size such as 500M or 8G, got "
                            f"{value!r}")
    return n


class _Permanent(Exception):
    """A failure that another attempt cannot change: report it now, remove the partial file."""


class _ShortRead(Exception):
    """The server closed the connection before sending every byte it announced."""


def download(url: str, dest: Path, stats: tuple[int, str] | None = None, retries: int = 4,
             timeout: float = 30.0, backoff: float = 1.0, max_bytes: int | str | None = None,
             advice: str = "use a mirror via url= / RESNETTE_URL_<NAME>") -> Path:
    """Fetch `url` into `dest.part` within its bound; return the part file (not verified).

    `stats[0]`, fastai's recorded size, is the exact length expected; without it the
    server's announced length, capped by `max_download_bytes(max_bytes)`. `advice` ends
    the message of a network failure (what to do offline).
    """
    part = dest.with_name(dest.name + ".part")
    limit = stats[0] if stats is not None else max_download_bytes(max_bytes)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ResnetteError(str(_local_error(e, dest.parent, url, 0))) from None
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, timeout, limit, recorded=stats is not None)
            return part
        except _Permanent as e:
            _remove(part)
            raise ResnetteError(str(e)) from None
        except urllib.error.HTTPError as e:
            if e.code == 416:  # the partial file is already complete, or stale: start over
                _remove(part)
            elif e.code < 500 and e.code not in _RETRY_HTTP:
                _remove(part)
                raise ResnetteError(f"download of {url} failed: HTTP {e.code} {e.reason}; "
                                    f"check the address, or {advice}") from None
            err: Exception = e
        except ValueError as e:   # urllib: "unknown url type", "Invalid IPv6 URL": not retried
            _remove(part)
            raise ResnetteError(f"{url!r} is not an address resnette can download ({e}); give "
                                f"an http(s):// or file:// address, or {advice}") from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, str) and reason.startswith("unknown url type"):
                _remove(part)
                raise ResnetteError(f"{url!r} is not an address resnette can download "
                                    f"({reason}); give an http(s):// or file:// address, or "
                                    f"{advice}") from None
            if isinstance(reason, socket.gaierror) and reason.errno in _NO_SUCH_HOST:
                _remove(part)
                host = urllib.request.urlparse(url).hostname
                raise ResnetteError(f"download of {url} failed: no host named {host} can be "
                                    f"found ({reason.strerror}); offline, or a mistyped "
                                    f"address? {advice}") from None
            err = e
        except (OSError, http.client.HTTPException, _ShortRead) as e:
            err = e
        if attempt == retries:
            break
        time.sleep(backoff * 2 ** attempt)
    if not (url.startswith(("http:", "https:")) and part.exists() and part.stat().st_size):
        _remove(part)   # nothing a resume could use
    reason = getattr(err, "reason", err)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        reason = f"no data for {timeout:g} s (timed out)"
    raise ResnetteError(f"download of {url} failed after {retries + 1} tries: {reason}; check "
                        f"the network, or {advice}")


def _fetch(url: str, part: Path, timeout: float, limit: int, recorded: bool) -> None:
    if url.startswith("file:"):
        _check_local(url)
    have = part.stat().st_size if part.exists() else 0
    if have > limit:
        _remove(part)
        have = 0
    req = urllib.request.Request(url, headers={"User-Agent": "resnette"})
    if have and not url.startswith("file:"):
        req.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        status = getattr(resp, "status", None) or 200
        if status != 206:  # the server ignored Range (or there was none): start from zero
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None and length.isdigit() else None
        if total is not None and recorded and total != limit:
            raise _Permanent(f"{url} gave {total} bytes, expected {limit} (fastai's record); "
                             "a different file? nothing was kept")
        if total is not None and total > limit:
            raise _Permanent(f"{url} is {size_text(total)}, over the {size_text(limit)} cap for "
                             f"an address with no recorded size; set {MAX_ENV}=<size> (e.g. "
                             f"{MAX_ENV}={-(-total // 2**30)}G) to allow it")
        _check_room(part, (total if total is not None else 0) - have, url)
        got = _copy(resp, part, have, limit, url, recorded)
    if total is not None and got < total:
        raise _ShortRead(f"connection closed after {got} of {total} bytes")


def _copy(resp, part: Path, have: int, limit: int, url: str, recorded: bool) -> int:
    """Append the body to `part`, reading at most one byte past `limit` to see it is over."""
    from tqdm import tqdm   # not tqdm.auto: it warns in a Jupyter kernel without ipywidgets

    got = have
    try:
        f = open_write(part, "partial download", append=bool(have))
    except OSError as e:
        raise _local_error(e, part, url, got) from None
    with f, tqdm(total=limit if recorded else None, initial=have, unit="B", unit_scale=True,
                 desc=part.name[:-5], disable=None, leave=False) as bar:
        while chunk := resp.read(min(1 << 20, limit + 1 - got)):
            got += len(chunk)
            if got > limit:
                what = ("the size fastai records for it" if recorded else
                        f"the cap for an address with no recorded size; set {MAX_ENV}=<size> "
                        "if the file really is bigger")
                raise _Permanent(f"{url} sent more than {size_text(limit)} ({limit} bytes), "
                                 f"{what}; an endless stream? the partial file was removed")
            try:
                f.write(chunk)
            except OSError as e:
                raise _local_error(e, part, url, got - len(chunk)) from None
            bar.update(len(chunk))
    return got


def _check_local(url: str) -> None:
    """A `file://` address must name a regular file: a missing one, a folder, a FIFO or a
    device is a permanent failure (a FIFO or /dev/zero would otherwise stream for ever)."""
    path = urllib.request.url2pathname(urllib.request.urlparse(url).path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise _Permanent(f"{url}: cannot read {path} ({e.strerror}); check the address") from None
    if stat.S_ISDIR(st.st_mode):
        raise _Permanent(f"{url}: {path} is a folder, not an archive; give the archive file "
                         "(or train on the folder itself with --data)")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
        raise _Permanent(f"{url}: {path} is not a regular file ({kind}); give an archive file")


def _check_room(part: Path, need: int, url: str) -> None:
    free = shutil.disk_usage(part.parent).free
    if need > free:
        raise _Permanent(f"downloading {url} needs {size_text(need)} at {part.parent} but only "
                         f"{size_text(free)} is free there; free some space or set "
                         "RESNETTE_HOME (or --data-dir) to a disk with room")


def _local_error(e: OSError, where: Path, url: str, written: int) -> _Permanent:
    """A failure writing here, said as what it is (never 'check the network')."""
    fix = "set RESNETTE_HOME (or --data-dir) to a writable folder on a disk with room"
    if where.name.endswith(".part"):
        _remove(where)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        free = shutil.disk_usage(where.parent).free
        return _Permanent(f"disk full while downloading {url} to {where} (stopped after "
                          f"{size_text(written)}; {size_text(free)} free once the partial file "
                          f"was removed); free some space or {fix}")
    if e.errno == errno.EFBIG:
        return _Permanent(f"file size limit reached while downloading {url} to {where} (ulimit "
                          f"-f, after {size_text(written)}); raise the limit or {fix}")
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = next((p for p in (where, *where.parents) if p.exists() and not p.is_dir()),
                       where)
        return _Permanent(f"cannot create the download folder {where}: {blocker} is a file, "
                          f"not a folder; move it or {fix}")
    return _Permanent(f"cannot write {where} ({e.strerror or e}); {fix}")


def _remove(p: Path) -> None:
    try:
        p.unlink()
    except OSError:
        pass
