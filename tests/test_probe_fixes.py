"""Round four's adversarial probes (issue 23's next round), in-process: each failed before its
fix. A 20-hex folder that is not a cache entry is never cleared; absurd environment values are
one line, not a traceback."""
from __future__ import annotations

import pytest

from resnette import cachedir
from resnette.cli import main


def test_cache_clear_never_removes_a_key_named_folder_that_is_not_an_entry(monkeypatch, tmp_path,
                                                                        capsys):
    """`cache clear --all` removed any folder with a key's name, even a run trained there."""
    monkeypatch.setenv("RESNETTE_HOME", str(tmp_path / "home"))
    stranger = cachedir.default_dir() / "abcdefabcdefabcdef12"
    stranger.mkdir(parents=True)
    (stranger / ".resnette-run").write_text("resnette run folder\n")
    (stranger / "model.safetensors").write_bytes(b"weights")
    assert main(["cache", "clear", "--all"]) == 0
    assert (stranger / "model.safetensors").read_bytes() == b"weights"
    assert "abcdefabcdefabcdef12" not in capsys.readouterr().out


@pytest.mark.parametrize("value", ["9" * 400 + "T", "1e999", "99999999999999999999999999T"])
def test_an_absurd_cache_limit_is_one_line(monkeypatch, capsys, value):
    monkeypatch.setenv("RESNETTE_CACHE_LIMIT", value)
    assert main(["cache"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and "RESNETTE_CACHE_LIMIT" in err


def test_a_world_size_that_is_not_a_number_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "abc")
    assert main(["train", "--data", "digits", "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: WORLD_SIZE='abc' is not a number")


def test_predict_refuses_a_config_file_for_a_run_folder(tmp_path, capsys):
    """Round-four probe: `predict --config partial.toml RUN` dropped the run's own config and
    filled the missing keys (size, arch) with defaults: wrong predictions, exit 0."""
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (tmp_path / "p.toml").write_text('arch = "simple_cnn"\n')
    assert main(["predict", "--config", str(tmp_path / "p.toml"), str(run), str(tmp_path)]) == 2
    assert "--config is for a bare .safetensors file" in capsys.readouterr().err


def test_an_empty_output_name_is_one_line():
    """Round-four probe: `runs plot RUN -o ''` wrote runs.png where it stood."""
    from resnette.files import output
    from resnette.utils import ResnetteError
    for empty in ("", "  "):
        with pytest.raises(ResnetteError, match="the output name is empty"):
            output(empty, "runs plot")
