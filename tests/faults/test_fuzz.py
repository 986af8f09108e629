"""Property-based tests (Hypothesis) of the settings: any config file and any flags give a
config that trains as recorded, or one `error:` line; never a traceback.

In-process and fast (no training): the parser and `make_config` are called directly. The
real-process fuzzers (damaged run folders, train flags, archives and URLs) are in
test_fuzz_runs.py and test_fuzz_inputs.py.

How many examples: the Hypothesis profile `ci` (the default: a few, derandomized, so CI is
repeatable) or `long` (HYPOTHESIS_PROFILE=long: hundreds per test, random; docs/FAULTS.md).
"""
from __future__ import annotations

import contextlib
import io
import math
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from resnette.cli import build_parser
from resnette.run import recipes
from resnette.run.config import field_names, make_config, read_toml, to_toml, toml_value
from resnette.run.setup import config_from_args
from resnette.utils import ResnetteError

_QUIET = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=6, deadline=None, derandomize=True, database=None,
                          suppress_health_check=_QUIET)
settings.register_profile("long", max_examples=300, deadline=None, database=None,
                          suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
MANY = settings.default.max_examples * 5   # for the in-process properties: cheap examples

KEYS = field_names()
SIZES = st.sampled_from([0, 16, 31, 32, 48, 64, 96, 112, 128, 160, 4096, 4097, -3])
VALUES = st.one_of(
    st.integers(-5, 300), SIZES, st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.text(max_size=12), st.sampled_from(["fast", "chapter", "leaderboard", "digits", "one_cycle",
                                           "flat_cos", "auto", "cpu", "fp32", "crop_flip"]),
    st.lists(SIZES, max_size=5))
# the keys whose meanings meet (sizes, schedule, recipe) come up more often than the others
HOT = ["size", "presize", "progressive", "test_size", "recipe", "epochs", "schedule", "pct_start"]
CONFIGS = st.dictionaries(st.sampled_from(HOT * 3 + KEYS + ["sizes", "learning_rate"]), VALUES,
                          max_size=8)


def _one_line(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message, message


def _consistent(cfg) -> None:
    """What every accepted config must satisfy: the keys that share a meaning agree."""
    assert 32 <= cfg.size <= cfg.presize <= 4096
    if cfg.progressive:
        assert cfg.progressive[-1] == cfg.size and max(cfg.progressive) <= cfg.presize
        assert len(cfg.progressive) <= cfg.epochs
    assert cfg.test_size is None or 32 <= cfg.test_size <= 4096


@settings(max_examples=MANY)
@given(file=CONFIGS, flags=CONFIGS)
def test_any_config_and_flags_give_a_consistent_config_that_round_trips_or_one_line(
        tmp_path_factory, file, flags):
    try:
        cfg = make_config(file, flags)
    except ResnetteError as e:
        return _one_line(str(e))
    _consistent(cfg)
    for key, value in flags.items():   # a flag always wins
        if not (isinstance(value, float) and math.isnan(value)):
            assert getattr(cfg, key) == value or (key == "size" and cfg.progressive), key
    saved = tmp_path_factory.mktemp("cfg") / "config.toml"
    saved.write_text(to_toml(cfg), encoding="utf-8")
    assert make_config(read_toml(saved)) == cfg      # config.toml rebuilds the same run


@settings(max_examples=MANY)
@given(st.data())
def test_a_size_flag_over_any_recipe_is_what_trains_and_validates(data):
    recipe = data.draw(st.sampled_from(recipes.names()))
    size = data.draw(st.sampled_from([32, 48, 64, 96, 128]))
    presize = data.draw(st.sampled_from([size, 160, 192]))
    cfg = make_config({"recipe": recipe}, {"size": size, "presize": presize})
    assert (cfg.size, cfg.progressive, cfg.test_size) == (size, [], None)


FLAG_VALUES = st.one_of(st.sampled_from(["32", "48", "64", "0", "-1", "1e3", "nan", "inf", "x", "",
                                         "fast", "digits", "cpu", "auto", "fp16", "160", "4097"]),
                        st.text(max_size=6))
TRAIN_FLAGS = ["--size", "--presize", "--test-size", "--recipe", "--epochs", "--bs", "--lr",
               "--wd", "--mixup", "--schedule", "--pct-start", "--valid-pct", "--seed",
               "--precision", "--device", "--min-scale", "--name", "--arch", "--ema", "--clip"]
ARGV = st.lists(st.one_of(
    st.tuples(st.sampled_from(TRAIN_FLAGS), FLAG_VALUES).map(list),
    st.tuples(st.just("--progressive"), st.lists(FLAG_VALUES, max_size=4)).map(
        lambda t: [t[0], *t[1]]),
    st.sampled_from([["--augment"], ["--no-augment"], ["--sa"], ["--quiet"], ["--overwrite"],
                     ["--resume"], ["--bogus"], ["-x"]])), max_size=6)


@settings(max_examples=MANY)
@given(ARGV)
def test_any_train_command_line_parses_to_a_config_or_one_line(tmp_path_factory, monkeypatch,
                                                               argv):
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))   # --resume looks for runs/<name>
    flat = ["train", "--data", "digits", *[a for part in argv for a in part]]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            args = build_parser().parse_args(flat)
        except SystemExit as e:
            assert e.code == 2
            lines = err.getvalue().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), err.getvalue()
            return
    try:
        cfg = config_from_args(args)
    except ResnetteError as e:
        return _one_line(str(e))
    _consistent(cfg)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "a\0b", "caf\udce9", [1, 2]])
def test_toml_values_write_back_as_what_they_were(value, tmp_path):
    """The writer the fuzzer relies on: every value a config can hold round-trips."""
    (tmp_path / "c.toml").write_text(f"x = {toml_value(value)}\n", encoding="utf-8")
    back = read_toml(tmp_path / "c.toml")["x"]
    assert back == value or (isinstance(value, float) and math.isnan(back))
