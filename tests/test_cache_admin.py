"""The decode cache as a managed folder (issue 19 #2): listing, clearing, the size limit with
least-recently-used eviction, and entries in use never removed (resnette/cachedir.py)."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resnette import cachedir
from resnette.data.cache import decoded_store
from resnette.utils import ResnetteError
from fakes import image_folder


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETTE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(cachedir.LIMIT_ENV, raising=False)
    return tmp_path / "home" / "decoded"


def build(root: Path, presize: int, base: Path):
    files = sorted(root.rglob("*.png"))
    return decoded_store(root, files, presize, cache_dir=base, workers=1)


def used_at(base: Path, store, t: float) -> None:
    os.utime(base / f"{store.path.name}.use", (t, t))


def test_list_shows_source_presize_size_and_clear_all_forces_a_rebuild(home, tmp_path):
    src = image_folder(tmp_path / "imgs")
    store = build(src, 16, home)
    assert store.decoded == 12
    del store
    gc.collect()
    (entry,) = cachedir.entries(home)
    assert (entry.source, entry.presize, entry.images) == (str(src), 16, 12)
    assert entry.bytes >= 12 * 16 * 16 * 3 and entry.source_exists and not entry.in_use
    assert time.time() - entry.last_used < 60
    removed, busy = cachedir.clear(home, everything=True)
    assert [e.key for e in removed] == [entry.key] and busy == []
    assert not entry.path.exists() and cachedir.entries(home) == []
    assert not [p for p in os.listdir(home) if p.endswith(".tmp")]
    assert build(src, 16, home).decoded == 12      # the next run decodes again


def test_an_entry_in_use_is_kept_and_released_with_its_images(home, tmp_path):
    src = image_folder(tmp_path / "imgs")
    store = build(src, 16, home)
    (entry,) = cachedir.entries(home)
    assert entry.in_use
    removed, busy = cachedir.clear(home, everything=True)
    assert removed == [] and [e.key for e in busy] == [entry.key]
    assert int(store.images[3].sum()) >= 0 and entry.path.is_dir()
    view = store.images[2:5]          # a view keeps the map, and so the hold, alive
    del store
    gc.collect()
    assert cachedir.entries(home)[0].in_use
    del view
    gc.collect()
    assert not cachedir.entries(home)[0].in_use


def test_eviction_removes_least_recently_used_first_until_it_fits(home, tmp_path):
    src = image_folder(tmp_path / "imgs")
    stores = [build(src, p, home) for p in (16, 20, 24)]
    now = time.time()
    for age, i in zip((100, 300, 200), range(3)):   # 20 px is the oldest, then 24, then 16
        used_at(home, stores[i], now - age)
    keys = [s.path.name for s in stores]
    del stores
    gc.collect()
    sizes = {e.key: e.bytes for e in cachedir.entries(home)}
    removed = cachedir.make_room(home, need=0, keep="", limit=sizes[keys[0]], say=False)
    assert [e.key for e in removed] == [keys[1], keys[2]]
    assert [e.key for e in cachedir.entries(home)] == [keys[0]]


def test_the_limit_evicts_when_a_run_builds_never_the_entry_in_use(home, tmp_path, monkeypatch,
                                                                   capsys):
    src = image_folder(tmp_path / "imgs")
    kept = build(src, 16, home)            # held: a training is reading it
    old = build(src, 20, home)
    old_key = old.path.name
    del old
    gc.collect()
    monkeypatch.setenv(cachedir.LIMIT_ENV, "1kB")
    capsys.readouterr()
    new = build(src, 24, home)
    assert new.decoded == 12
    keys = {e.key for e in cachedir.entries(home)}
    assert keys == {kept.path.name, new.path.name} and old_key not in keys
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "removed 1 least recently used entry" in err[0]
    assert "imgs at 20px" in err[0] and cachedir.LIMIT_ENV in err[0]
    assert kept.images.shape == (12, 16, 16, 3)


def test_clear_by_missing_source_and_by_age(home, tmp_path):
    gone, stays = image_folder(tmp_path / "gone"), image_folder(tmp_path / "stays")
    a, b, c = build(gone, 16, home), build(stays, 16, home), build(stays, 20, home)
    used_at(home, c, time.time() - 40 * 86400)
    keys = [s.path.name for s in (a, b, c)]
    del a, b, c
    gc.collect()
    gone.rename(tmp_path / "moved")
    removed, _ = cachedir.clear(home, missing_source=True)
    assert [e.key for e in removed] == [keys[0]]
    removed, _ = cachedir.clear(home, unused_days=30)
    assert [e.key for e in removed] == [keys[2]]
    assert [e.key for e in cachedir.entries(home)] == [keys[1]]


def test_limit_parsing(monkeypatch):
    for text, value in (("", cachedir.DEFAULT_LIMIT), ("500MB", 500 * 10**6),
                        ("1.5GiB", 1.5 * 2**30),
                        ("20gb", 20 * 10**9), ("123", 123), ("none", None)):
        monkeypatch.setenv(cachedir.LIMIT_ENV, text)
        assert cachedir.cache_limit() == value
    monkeypatch.setenv(cachedir.LIMIT_ENV, "lots")
    with pytest.raises(ResnetteError, match="RESNETTE_CACHE_LIMIT='lots' is not a size"):
        cachedir.cache_limit()


def test_the_cache_folder_is_where_the_data_layer_puts_it(home, monkeypatch):
    from resnette.data.sources import resnette_home
    assert cachedir.default_dir() == resnette_home() / "decoded" == home
    monkeypatch.delenv("RESNETTE_HOME")
    assert cachedir.default_dir() == resnette_home() / "decoded"


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "resnette", *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.slow
def test_cache_command_lists_clears_and_imports_no_torch(home, tmp_path):
    src = image_folder(tmp_path / "imgs")
    store = build(src, 16, home)
    key = store.path.name
    del store
    gc.collect()
    env = {**os.environ, "RESNETTE_HOME": str(home.parent)}
    listing = cli("cache", env=env)
    assert listing.returncode == 0, listing.stderr[-1000:]
    assert str(src) in listing.stdout and "1 entry" in listing.stdout
    imported = [ln for ln in listing.stderr.splitlines() if ln.startswith("import time:")]
    assert imported and not [ln for ln in imported if "| torch" in ln or "| numpy" in ln]
    refused = cli("cache", "clear", env=env)
    assert refused.returncode == 2
    assert "--unused-days N, --missing-source or --all" in refused.stderr
    assert cli("cache", "--all", env=env).returncode == 2   # listing never clears
    assert (home / key).is_dir()
    cleared = cli("cache", "clear", "--all", env=env)
    assert cleared.returncode == 0 and "1 entry removed" in cleared.stdout
    assert not (home / key).exists()


@pytest.mark.slow   # a second Python process importing the data layer
def test_an_entry_another_process_reads_is_never_removed(home, tmp_path):
    src = image_folder(tmp_path / "imgs")
    code = ("import sys; from pathlib import Path; from resnette.data.cache import decoded_store\n"
            f"root = Path({str(src)!r})\n"
            "s = decoded_store(root, sorted(root.rglob('*.png')), 16, "
            f"cache_dir=Path({str(home)!r}), workers=1)\n"
            "print('ready', flush=True); sys.stdin.read(); print(int(s.images.sum()))")
    reader = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "ready"
        (entry,) = cachedir.entries(home)
        assert entry.in_use
        assert cachedir.make_room(home, need=10**12, keep="", limit=1, say=False) == []
        removed, busy = cachedir.clear(home, everything=True)
        assert removed == [] and [e.key for e in busy] == [entry.key]
        out, _ = reader.communicate("", timeout=120)   # it still reads its images
        assert reader.returncode == 0 and int(out) > 0
    finally:
        reader.kill()
    removed, _ = cachedir.clear(home, everything=True)
    assert [e.key for e in removed] == [entry.key] and not entry.path.exists()
