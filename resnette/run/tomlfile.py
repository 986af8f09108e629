"""TOML in and out, for config files and run folders' config.toml: reading with one-line
errors (a BOM is accepted), writing any value a TrainConfig holds, and file names that are
not UTF-8 kept byte for byte (see `escape_bytes`)."""
from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from resnette.files import read_small
from resnette.utils import ResnetteError

def read_toml(path: str | Path) -> dict[str, Any]:
    """A config file's keys as a dict. A `[train]` table is accepted too, for tidiness."""
    path = Path(path)
    try:
        raw = read_small(path, "config file", 1 << 20)   # no FIFO, /dev/zero, huge file
        # A UTF-8 byte-order mark (Windows Notepad writes one) is not TOML, but it is no
        # mistake of the user's either: accepted and ignored.
        data = tomllib.loads(raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except FileNotFoundError:
        raise ResnetteError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ResnetteError(f"config file {path} is a folder; give a .toml file") from None
    except OSError as e:
        raise ResnetteError(f"cannot read config file {path} ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ResnetteError(f"config file {path} is not UTF-8 text (byte {e.start}); "
                            "save it as UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise ResnetteError(f"config file {path} is not valid TOML: {e}") from None
    except RecursionError:   # `a = [[[[...]]]]` thousands deep: tomllib recurses per level
        raise ResnetteError(f"config file {path} nests arrays or tables too deeply to read; "
                            "is it the right file?") from None
    if isinstance(data.get("train"), dict):
        data = {**{k: v for k, v in data.items() if k != "train"}, **data["train"]}
    return {k: unescape_bytes(v) if isinstance(v, str) else v for k, v in data.items()}


# File names that are not UTF-8 (e.g. Latin-1 b"caf\xe9") reach Python as str with "surrogate
# escapes" (os.fsdecode), which TOML cannot hold. Such a string is written as a NUL (which no
# file name can contain, so the mark is unambiguous) and then the name with each raw byte as
# \xNN and each backslash doubled: `data = "\u0000/photos/caf\\xe9"`. Reading undoes it, so the
# name round-trips byte for byte; every other string is written as it is.
_MARK = "\x00"


def escape_bytes(text: str) -> str:
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    return _MARK + "".join(f"\\x{ord(ch) - 0xDC00:02x}" if "\udc80" <= ch <= "\udcff"
                           else "\\\\" if ch == "\\" else ch for ch in text)


def unescape_bytes(text: str) -> str:
    if not text.startswith(_MARK):
        return text
    out, i, body = [], 0, text[1:]
    while i < len(body):
        if body.startswith("\\\\", i):
            out.append("\\")
            i += 2
        elif body.startswith("\\x", i) and len(body) >= i + 4:
            out.append(chr(0xDC00 + int(body[i + 2:i + 4], 16)))
            i += 4
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def toml_value(v: Any) -> str:
    """One scalar or list in TOML syntax (all a TrainConfig ever holds)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        text = repr(v)  # shortest round-trip form, e.g. 0.003 or 1e-05: both valid TOML
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(v, str):
        return _toml_string(escape_bytes(v))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _toml_string(s: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r",
               "\b": "\\b", "\f": "\\f"}
    out = []
    for ch in s:
        if ch in escapes:
            out.append(escapes[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:  # TOML forbids raw control characters
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
