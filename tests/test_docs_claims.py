"""Docs that hold on a fresh machine (issue 24 #4): the install line gets PyTorch's CPU wheel
from its documented index and says why; the digits run's time is one measured figure, the
same wherever it is claimed; the book's guide names no machine's absolute path."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
# where the digits run's time is claimed: the README's quick start, the CLI guide, `--help`
CLAIMS = [ROOT / "README.md", ROOT / "docs" / "CLI.md", ROOT / "resnette" / "cli_examples.py"]
TIME = re.compile(r"(?:about|~|in)\s*(?:a|an|one|\d+(?:\.\d+)?)\s*(?:s|sec\w*|min\w*)\b")


def _paragraphs(path: Path) -> list[str]:
    return re.split(r"\n\s*\n", path.read_text(encoding="utf-8"))


def test_the_install_line_gets_the_cpu_wheel_from_pytorchs_index_and_says_why():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme[readme.index("## Quick start"):readme.index("## Imagenette")]
    first = next(line.strip() for line in quick.splitlines() if line.startswith("    "))
    assert first == CPU_INDEX
    why = " ".join(quick.split())
    assert "CUDA build" in why and "nvidia-*" in why and "macOS and Windows" in why


def test_the_digits_time_is_one_figure_everywhere_it_is_claimed():
    """Every paragraph about the digits run that states a time states the same one."""
    found = {}
    for path in CLAIMS:
        for para in _paragraphs(path):
            if "digits" in para:
                for phrase in TIME.findall(" ".join(para.split())):
                    found.setdefault(phrase, []).append(path.name)
    assert len(found) == 1, found
    (phrase, where), = found.items()
    assert re.fullmatch(r"about \d+ s", phrase), phrase   # a measured figure, not "a minute"
    assert set(where) == {p.name for p in CLAIMS}, where


def test_the_book_guide_names_no_machines_absolute_path():
    text = (ROOT / "docs" / "BOOK.md").read_text(encoding="utf-8")
    assert not re.search(r"(?<![\w.])/(?:work|home|Users|root|tmp|mnt|data)/", text)
    assert "file:///path/to/" in text
