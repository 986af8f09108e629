"""A scan that ends: links to `.`/`..` and a FIFO named like an image, through a real
`resnette train` with a timeout (before, the link to `.` hung the scan with no output and the
FIFO hung the decoder)."""
import os
import shutil

import pytest

from conftest import run, train_args


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_train_ends_with_links_to_dot_and_dotdot_and_a_fifo_named_jpg(world, tmp_path):
    data = shutil.copytree(world["data"], tmp_path / "images", symlinks=True)
    (data / "train" / "a" / "loop").symlink_to(".")
    (data / "train" / "up").symlink_to("..")
    (data / "valid" / "b" / "again").symlink_to("../b")
    os.mkfifo(data / "train" / "b" / "pipe.jpg")
    proc = run(train_args(data, "scan", "--epochs", "1"), tmp_path, tmp_path / "home", timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    left_out = [line for line in proc.stderr.splitlines() if "images left out under" in line]
    assert len(left_out) == 1, proc.stderr[-3000:]
    assert "1 not regular files (FIFO, socket, device, broken link), e.g. train/b/pipe.jpg" in left_out[0]
    assert "1 linked folders already listed or leading up (loops), e.g. train/up" in left_out[0]
    assert "2 linked folders inside a label folder (not followed)" in left_out[0]
    # the same 68 files as without the links: 64 images and the 4 bad files
    assert "skipped 4 unreadable image(s) of 68" in proc.stderr
