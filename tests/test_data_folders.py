"""Any folder of images: layouts, labels, splits, names, colour modes, unreadable files."""
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnette.data import folder, get_data
from resnette.data.decode import UnreadableImage, decode_image
from resnette.data.folders import scan_folder
from resnette.utils import ResnetteError


def write_image(path: Path, size=(40, 30), mode="RGB", seed=0, fmt=None) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path, format=fmt)
    return path


def make_tree(root: Path, splits=("train", "valid"), labels=("cat", "dog"), n=3, ext=".png") -> Path:
    for s in splits:
        for lab in labels:
            for i in range(n):
                write_image(root / s / lab / f"{lab}{i}{ext}", seed=hash((s, lab, i)) % 1000)
    return root


def test_split_folders_give_labels_from_parent_and_sorted_vocab(tmp_path):
    root = make_tree(tmp_path / "ds", labels=("zebra", "ant", "mole"))
    (root / "train" / "notes.txt").write_text("not an image")
    s = scan_folder(root)
    assert s.vocab == ["ant", "mole", "zebra"]
    assert s.is_valid.sum() == 9 and (~s.is_valid).sum() == 9
    for f, lab in zip(s.files, s.labels):
        assert s.vocab[lab] == f.parent.name


@pytest.mark.parametrize("train,valid", [("train", "val"), ("train", "valid"), ("training", "testing")])
def test_split_folder_names(tmp_path, train, valid):
    s = scan_folder(make_tree(tmp_path / "ds", splits=(train, valid)))
    assert s.is_valid.sum() == 6 and all(f.parts[-3] == valid for f in np.array(s.files)[s.is_valid])


def test_valid_pct_split_is_seeded_and_sized(tmp_path):
    root = make_tree(tmp_path / "ds", splits=("",), n=10)
    a, b, c = scan_folder(root, 0.3, seed=1), scan_folder(root, 0.3, seed=1), scan_folder(root, 0.3, seed=2)
    assert a.is_valid.sum() == 6
    assert [str(f) for f in a.files] == [str(f) for f in b.files]
    assert set(np.array(a.files)[a.is_valid]) != set(np.array(c.files)[c.is_valid])


def test_errors_are_one_line_and_say_what_to_do(tmp_path):
    with pytest.raises(ResnetteError, match="does not exist"):
        scan_folder(tmp_path / "nope")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "valid").mkdir()
    with pytest.raises(ResnetteError, match="no images"):
        scan_folder(tmp_path / "empty")
    with pytest.raises(ResnetteError, match="at least two"):
        scan_folder(make_tree(tmp_path / "one", labels=("solo",)))
    with pytest.raises(ResnetteError, match="valid_pct"):
        scan_folder(make_tree(tmp_path / "flat", splits=("",)))
    with pytest.raises(ResnetteError, match="between 0 and 1"):
        scan_folder(tmp_path / "flat", valid_pct=1.5)


def test_get_data_unknown_name_lists_choices(tmp_path):
    with pytest.raises(ResnetteError, match="imagenette-160.*digits"):
        get_data("imagenet-12")
    with pytest.raises(ResnetteError, match="no folder at"):
        get_data(str(tmp_path / "missing"))


def test_wordnet_ids_get_human_names(tmp_path):
    root = make_tree(tmp_path / "ds", labels=("n01440764", "n03888257", "n02099601"), n=1)
    dls = folder(root, size=16, presize=20, bs=1, cache_dir=tmp_path / "c", prefetch=0)
    assert dls.vocab == ["n01440764", "n02099601", "n03888257"]
    assert dls.names == ["tench", "golden retriever", "parachute"]
    assert dls.c == 3


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P", "LA", "I;16"])
def test_every_mode_comes_out_rgb(tmp_path, mode):
    p = tmp_path / f"im.{'jpg' if mode == 'CMYK' else 'png'}"
    if mode == "I;16":
        Image.fromarray(np.full((30, 40), 40000, dtype=np.uint16)).save(p)
    else:
        write_image(p, mode=mode)
    out = decode_image(p, 24)
    assert out.shape == (24, 24, 3) and out.dtype == np.uint8
    if mode == "I;16":
        assert abs(int(out.mean()) - 155) <= 1  # 40000/65535*255, scaled not clipped


def test_crop_keeps_centre_and_squish_keeps_all(tmp_path):
    arr = np.zeros((20, 60, 3), np.uint8)
    arr[:, :20] = 255  # a white left third: outside the centre square
    Image.fromarray(arr).save(tmp_path / "w.png")
    assert decode_image(tmp_path / "w.png", 20, "crop").max() == 0
    assert decode_image(tmp_path / "w.png", 20, "squish")[:, :5].min() == 255


def test_unreadable_files_are_skipped_with_one_warning(tmp_path):
    root = make_tree(tmp_path / "ds", n=4)
    (root / "train" / "cat" / "zero.jpg").write_bytes(b"")
    (root / "train" / "cat" / "text.png").write_text("hello, not a png")
    good = (root / "train" / "dog" / "dog0.png").read_bytes()
    (root / "train" / "dog" / "cut.png").write_bytes(good[: len(good) // 2])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        dls = folder(root, size=16, presize=20, bs=2, cache_dir=tmp_path / "c", prefetch=0)
    msgs = [str(x.message) for x in w if "unreadable" in str(x.message)]
    assert len(msgs) == 1 and msgs[0].startswith("skipped 3 unreadable") and "zero.jpg" in msgs[0]
    assert len(dls.train.items) == 8 and all("cut" not in i for i in dls.train.items)


def test_decompression_bomb_is_unreadable(tmp_path):
    p = tmp_path / "bomb.png"
    Image.new("1", (18000, 17000)).save(p)  # 306 Mpx of zeros compresses to almost nothing
    with pytest.raises(UnreadableImage, match="decompression bomb.*over the 300 MP limit"):
        decode_image(p, 32)


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_rgb_image_already_at_presize_decodes(tmp_path, ext):
    # No resize is needed here, so the pixels must be read before the file is closed.
    arr = np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    p = tmp_path / f"im.{ext}"
    Image.fromarray(arr).save(p)
    out = decode_image(p, 24)
    assert out.shape == (24, 24, 3)
    if ext == "png":
        assert np.array_equal(out, arr)


# ------------------------------------------------------------------ a scan that ends (issue 11)

def _left_out(record) -> list[str]:
    return [str(w.message) for w in record if "left out" in str(w.message)]


def test_links_to_dot_and_dotdot_neither_loop_nor_duplicate(tmp_path):
    root = make_tree(tmp_path / "ds", n=2)
    (root / "train" / "cat" / "loop").symlink_to(".")            # inside a label folder
    (root / "train" / "here").symlink_to(".")                    # a "label" that is the split
    (root / "train" / "up").symlink_to("..")                     # a "label" that is the root
    (root / "train" / "cat2").symlink_to("cat")                  # a second name for a label
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = scan_folder(root)
    assert s.vocab == ["cat", "dog"] and len(s.files) == 8 and len(set(s.files)) == 8
    (line,) = _left_out(w)
    assert "3 linked folders already listed or leading up" in line
    assert "1 linked folders inside a label folder (not followed)" in line


def test_a_link_to_a_folder_outside_is_read_at_the_layouts_depth_only(tmp_path):
    root = make_tree(tmp_path / "ds", n=2)
    outside = tmp_path / "elsewhere"
    write_image(outside / "top.png")
    for i in range(3):
        write_image(outside / "deep" / "er" / f"{i}.png")
    (outside / "deep" / "back").symlink_to(root)                 # and a way back in
    (root / "train" / "bird").symlink_to(outside)
    write_image(root / "valid" / "bird" / "b.png")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = scan_folder(root)
    assert [f.name for f in s.files if f.parent.name == "bird"] == ["top.png", "b.png"]
    assert not _left_out(w)   # deeper folders behind a link are not even walked to count them


def test_fifos_sockets_and_hidden_files_are_skipped_without_opening(tmp_path):
    import socket

    root = make_tree(tmp_path / "ds", n=2)
    os.mkfifo(root / "train" / "cat" / "pipe.jpg")   # opening it for reading would block
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "train" / "dog" / "s.png"))
    (root / "train" / "dog" / "gone.png").symlink_to("nowhere.png")
    write_image(root / "train" / "dog" / ".hidden.png")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = scan_folder(root)
    sock.close()
    assert len(s.files) == 8 and not any(f.name.startswith(".") for f in s.files)
    (line,) = _left_out(w)
    assert "3 not regular files (FIFO, socket, device, broken link)" in line


def test_images_in_nested_folders_are_counted_in_one_warning(tmp_path):
    root = make_tree(tmp_path / "ds", n=2)
    for i in range(3):
        write_image(root / "train" / "cat" / "more" / f"{i}.png")
    write_image(root / "train" / "dog" / "a" / "b" / "deep.png")
    write_image(root / "train" / "stray.png")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = scan_folder(root)
    assert len(s.files) == 8
    (line,) = _left_out(w)
    assert "4 in subfolders of a label folder (not used), e.g. train/cat/more/0.png" in line
    assert "1 beside the label folders, e.g. train/stray.png" in line


def test_predict_style_recursive_listing_ends_and_lists_each_image_once(tmp_path):
    from resnette.data.folders import image_files

    write_image(tmp_path / "pics" / "a.png")
    write_image(tmp_path / "pics" / "sub" / "b.png")
    (tmp_path / "pics" / "sub" / "up").symlink_to("..")
    (tmp_path / "pics" / "self").symlink_to(".")
    (tmp_path / "pics" / "parent").symlink_to("..")
    os.mkfifo(tmp_path / "pics" / "p.jpg")
    assert [f.name for f in image_files(tmp_path / "pics")] == ["a.png", "b.png"]


def test_names_that_are_not_utf8_scan_cache_and_train(tmp_path):
    root = make_tree(tmp_path / "ds", n=2)
    cafe = os.fsdecode(b"caf\xe9")
    for split in ("train", "valid"):
        for i in range(2):
            write_image(root / split / cafe / f"{cafe}{i}.png", seed=i)
    dls = folder(root, size=16, presize=16, bs=2, cache_dir=tmp_path / "c", prefetch=0)
    assert cafe in dls.vocab and len(dls.train.items) == 6
    x, y = next(iter(dls.train))
    assert x.shape == (2, 3, 16, 16)


def test_labels_that_differ_only_in_unicode_normalisation_are_one_class(tmp_path):
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    root = make_tree(tmp_path / "ds", labels=("dog", nfc), n=2)
    for i in range(2):
        write_image(root / "train" / nfd / f"mac{i}.png", seed=i + 7)   # copied from a Mac
    write_image(root / "valid" / nfd / "v.png")
    s = scan_folder(root)
    assert s.vocab == ["café", "dog"] and s.vocab[0] == nfc
    assert (s.labels == 0).sum() == 7     # 2 + 2 train, 2 + 1 valid


def test_data_modules_import_one_way():
    """No cycles among resnette/data modules, counting imports inside functions too (the
    datasets <-> digits pair used to import each other lazily)."""
    import ast

    import resnette.data

    here = Path(resnette.data.__file__).parent
    graph = {}
    for f in here.glob("*.py"):
        graph[f.stem] = {n.module.split(".")[2] for n in ast.walk(ast.parse(f.read_text()))
                         if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("resnette.data.")}

    def reaches(start, goal, seen=()):
        return any(d == goal or (d not in seen and reaches(d, goal, (*seen, d))) for d in graph.get(start, ()))
    assert [m for m in graph if reaches(m, m)] == []
