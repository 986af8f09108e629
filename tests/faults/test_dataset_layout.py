"""A downloaded archive whose layout is not the dataset's (no train/ and valid/ class folders,
another top folder, images without classes...) is refused in one line when it is extracted:
never marked complete, removed, and fetched afresh next time (data/layout.py). Before: a
mirror's wrong archive was marked complete and reused by every later run."""
import io
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import one_error_line, run
from resnette.data.sources import untar_data
from resnette.utils import ResnetteError

GOOD = {"mnist_tiny/train/3/0.png": b"p", "mnist_tiny/train/7/0.png": b"p",
        "mnist_tiny/valid/3/1.png": b"p", "mnist_tiny/valid/7/1.png": b"p",
        "mnist_tiny/labels.csv": b"name,label\n"}
WRONG = {   # what a mirror may serve instead, and words of the one line saying so
    "no valid folder": ({k: v for k, v in GOOD.items() if "/valid/" not in k}, "no valid folder"),
    "no train folder": ({k: v for k, v in GOOD.items() if "/train/" not in k}, "no train folder"),
    "another top folder": ({k.replace("mnist_tiny/", "mnist_png/"): v for k, v in GOOD.items()},
                           "no train folder"),
    "images without classes": ({"mnist_tiny/train/0.png": b"p", "mnist_tiny/valid/1.png": b"p"},
                               "holds no class folders"),
    "class folders without images": ({"mnist_tiny/train/3/notes.txt": b"x",
                                      "mnist_tiny/valid/3/notes.txt": b"x"}, "hold no images"),
    "validation classes never trained": ({**GOOD, "mnist_tiny/valid/9/2.png": b"p"},
                                         "validation classes ['9']"),
    "nothing but a readme": ({"README.md": b"# nothing here"}, "no train folder"),
}


def tgz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@settings(max_examples=14, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(sorted(WRONG)), extra=st.dictionaries(
    st.sampled_from(["mnist_tiny/test/5.png", "mnist_tiny/models/x.pth", "notes.txt"]),
    st.just(b"x"), max_size=2))
def test_a_wrong_layout_is_never_marked_and_the_right_one_is_fetched_next(tmp_path_factory,
                                                                           kind, extra):
    top = tmp_path_factory.mktemp("layout")
    files, words = WRONG[kind]
    archive, home = top / "mnist_tiny.tgz", top / "home"
    archive.write_bytes(tgz({**files, **extra}))
    with pytest.raises(ResnetteError) as e:
        untar_data("mnist-tiny", home, url=archive.as_uri(), retries=0)
    line = str(e.value)
    assert "\n" not in line and "not laid out as the dataset mnist_tiny" in line, line
    assert words in line, line
    assert sorted(p.name for p in home.iterdir()) == ["downloads"]   # nothing marked, no temp
    assert not any((home / "downloads").iterdir())                    # the archive removed
    archive.write_bytes(tgz(GOOD))                                    # the mirror fixed
    folder = untar_data("mnist-tiny", home, url=archive.as_uri(), retries=0)
    assert (folder / "valid" / "7" / "1.png").read_bytes() == b"p"


def test_a_folder_marked_complete_by_an_older_resnette_is_not_reused(tmp_path):
    archive, home = tmp_path / "mnist_tiny.tgz", tmp_path / "home"
    archive.write_bytes(tgz(GOOD))
    folder = untar_data("mnist-tiny", home, url=archive.as_uri(), retries=0)
    for f in (folder / "valid").rglob("*.png"):   # what an older resnette let through
        f.unlink()
    with pytest.raises(ResnetteError, match=r"mnist_tiny is not laid out as the dataset "
                       r"mnist-tiny is \(the class folders of valid/ hold no images\); remove"):
        untar_data("mnist-tiny", home)


def test_train_from_a_wrong_mirror_archive_is_one_line_and_leaves_no_dataset(tmp_path):
    archive = tmp_path / "mirror.tgz"
    archive.write_bytes(tgz(WRONG["no valid folder"][0]))
    proc = run(["train", "--data", "mnist-tiny", "--quiet"], tmp_path, tmp_path / "home",
               timeout=120, RESNETTE_URL_MNIST_TINY=archive.as_uri())
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "refusing mirror.tgz: it is not laid out as the dataset mnist_tiny is (no valid " \
        "folder" in line, line
    assert not (tmp_path / "home" / "mnist_tiny").exists()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
