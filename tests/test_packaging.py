"""What a user installs: the wheel and sdist carry the license and the typing marker, the
metadata states the SPDX license, and `resnette.__version__` is the installed version."""
import email
import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

import resnette

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """Build the sdist and wheel from a copy of the sources (an in-tree build would write
    build/ and *.egg-info into the checkout), with the installed setuptools, offline."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    import setuptools

    (req,) = (Requirement(r) for r in PYPROJECT["build-system"]["requires"])
    if Version(setuptools.__version__) not in req.specifier:
        pytest.skip(f"installed setuptools {setuptools.__version__} does not satisfy {req}")
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "resnette", src / "resnette",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = src / "dist"
    code = ("import setuptools.build_meta as b; s = b.build_sdist({0!r}); w = b.build_wheel({0!r}); "
            "print('BUILT', s, w)").format(str(out))
    proc = subprocess.run([sys.executable, "-c", code], cwd=src, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (built,) = [ln.split()[1:] for ln in proc.stdout.splitlines() if ln.startswith("BUILT ")]
    sdist, wheel = built
    return {"sdist": out / sdist, "wheel": out / wheel}


def test_the_wheel_carries_license_py_typed_and_the_spdx_license(dists):
    with zipfile.ZipFile(dists["wheel"]) as whl:
        names = whl.namelist()
        (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = email.message_from_bytes(whl.read(meta_name))
        (lic,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert whl.read(lic) == (ROOT / "LICENSE").read_bytes()
    assert "resnette/py.typed" in names
    # the named recipes are data files: `--recipe fast` must work from an installed wheel
    assert {f"resnette/run/recipes/{r}.toml" for r in ("chapter", "fast", "leaderboard")} <= set(names)
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Requires-Python"] == ">=3.11"
    assert "Typing :: Typed" in meta.get_all("Classifier")
    assert any(u.startswith("Imagenette, https://") for u in meta.get_all("Project-URL"))


def test_the_sdist_carries_the_license_and_py_typed(dists):
    with tarfile.open(dists["sdist"]) as sd:
        names = {n.split("/", 1)[1] for n in sd.getnames() if "/" in n}
    assert {"LICENSE", "resnette/py.typed", "pyproject.toml"} <= names


def test_the_license_is_apache_2_0_in_full():
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) > 190


def test_version_is_the_installed_metadata_version():
    assert resnette.__version__ == importlib.metadata.version("resnette") == PYPROJECT["project"]["version"]
