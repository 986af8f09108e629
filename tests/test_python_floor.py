"""The package runs on every Python it claims: pyproject's requires-python floor is at least
the newest standard-library module the code imports, and nothing it imports has been removed
from later Pythons (the claim has no upper bound). CI (.ci/run) also refuses an interpreter
below the floor; README says why CI runs one interpreter only."""
import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Standard-library modules that first appeared after 3.8, with the version that added them.
ADDED = {"zoneinfo": (3, 9), "graphlib": (3, 9), "tomllib": (3, 11), "annotationlib": (3, 14),
         "compression": (3, 14)}
# Modules that later Pythons removed (PEP 594 and distutils/imp/lib2to3).
REMOVED = {"distutils": (3, 12), "imp": (3, 12), "asynchat": (3, 12), "asyncore": (3, 12),
           "smtpd": (3, 12), "aifc": (3, 13), "audioop": (3, 13), "cgi": (3, 13),
           "cgitb": (3, 13), "chunk": (3, 13), "crypt": (3, 13), "imghdr": (3, 13),
           "mailcap": (3, 13), "msilib": (3, 13), "nis": (3, 13), "nntplib": (3, 13),
           "ossaudiodev": (3, 13), "pipes": (3, 13), "sndhdr": (3, 13), "spwd": (3, 13),
           "sunau": (3, 13), "telnetlib": (3, 13), "uu": (3, 13), "xdrlib": (3, 13),
           "lib2to3": (3, 13)}


def floor() -> tuple[int, int]:
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    m = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec.strip())
    assert m, f"requires-python should be a plain floor like '>=3.11', got {spec!r}"
    return int(m[1]), int(m[2])


def imported_modules() -> dict[str, str]:
    """Top-level module name -> the first file importing it, over the package and scripts."""
    found: dict[str, str] = {}
    files = [*ROOT.glob("resnette/**/*.py"), *ROOT.glob("benchmarks/*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                found.setdefault(n.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_the_floor_covers_every_standard_module_imported():
    mods = imported_modules()
    assert "tomllib" in mods      # the reason the floor is 3.11
    too_new = {m: (ADDED[m], f) for m, f in mods.items() if m in ADDED and ADDED[m] > floor()}
    assert not too_new, f"requires-python >={floor()} but these need newer Pythons: {too_new}"


def test_nothing_imported_was_removed_from_later_pythons():
    gone = {m: f for m, f in imported_modules().items() if m in REMOVED}
    assert not gone, f"removed from later Pythons: {gone}"


def test_this_interpreter_meets_the_floor_and_the_readme_states_it():
    assert sys.version_info[:2] >= floor()
    major, minor = floor()
    assert f"Python >= {major}.{minor}" in (ROOT / "README.md").read_text()
    assert f"Programming Language :: Python :: {major}.{minor}" in (ROOT / "pyproject.toml").read_text()
