"""The learning-rate finder: an exponential sweep that stops on divergence, leaves the Learner
exactly as it found it, and suggests learning rates the way fastai does."""
from __future__ import annotations

import math

import pytest
import torch

from resnette.train import Learner
from resnette.train.lr_find import _valley, suggest
from fakes import FakeDataLoaders


def test_lr_find_sweeps_stops_on_divergence_and_restores_everything(tmp_path):
    torch.manual_seed(0)
    # no batchnorm, so a large lr really does blow the loss up
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(768, 3))
    dls = FakeDataLoaders()
    dls.train.labels = dls.train.labels[torch.randperm(dls.train.n)]   # labels it cannot fit
    learn = Learner(dls, model, opt="sgd", run_dir=tmp_path, quiet=True)
    learn.fit(1, 1e-3)   # so there is optimizer state to restore
    weights = {k: v.clone() for k, v in learn.model.state_dict().items()}
    opt_state = learn.opt.state_dict()
    bufs = [s["momentum_buffer"].clone() for s in opt_state["state"].values()]
    rng = torch.get_rng_state()

    res = learn.lr_find(end_lr=1e3, num_it=60)
    assert len(res.lrs) < 60   # SGD at lr 1e3 diverges well before the end
    assert res.lrs[0] == 1e-7 and all(b / a == pytest.approx(10 ** (10 / 60)) for a, b in zip(res.lrs, res.lrs[1:]))
    assert res.losses[-1] > 4 * min(res.losses)
    # fastai reads the suggestions off the curve without its first num_it//10 and last 5
    # points, so each is a swept lr from that window, well before the divergence
    window = list(zip(res.lrs, res.losses))[6:-5]
    assert res.valley in [lr for lr, _ in window] and res.steepest in [lr for lr, _ in window]
    assert res.minimum * 10 == pytest.approx(min(window, key=lambda p: p[1])[0])
    # where the run folder keeps its plots (the same path `resnette lr-find` reports)
    assert (tmp_path / "plots" / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    after = learn.opt.state_dict()
    assert all(torch.equal(s["momentum_buffer"], b) for s, b in zip(after["state"].values(), bufs))
    assert after["param_groups"][0]["lr"] == opt_state["param_groups"][0]["lr"]
    assert torch.equal(torch.get_rng_state(), rng)


def test_suggestions_follow_fastais_definitions():
    # a made-up curve: flat, a long fall, a minimum, then divergence
    lrs = [10 ** (-7 + 8 * i / 100) for i in range(100)]
    losses = [2.0 if i < 30 else 2.0 - 0.04 * (i - 30) if i < 70 else 0.4 + 0.3 * (i - 70) for i in range(100)]
    res = suggest(lrs, losses, 100)
    lo, hi = 10, 95   # fastai ignores the first num_it//10 and the last 5 points
    i_min = min(range(lo, hi), key=lambda i: losses[i])
    assert res.minimum == pytest.approx(lrs[i_min] / 10)
    slopes = [(losses[i + 1] - losses[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i])) for i in range(lo, hi - 1)]
    assert res.steepest == pytest.approx(lrs[lo + slopes.index(min(slopes))])
    assert lrs[30] < res.valley < lrs[70]


def test_valley_picks_a_point_inside_the_longest_fall():
    losses = [5, 4, 3, 2, 1, 0, 6, 7]     # the fall spans indices 0..5
    # fastai's arithmetic: start = end - length = 5 - 6 = -1, then -1 + int(6/3) + int(6/3/2)
    assert _valley(losses) == 2


def test_the_result_also_answers_to_fastais_names():
    from resnette.train.lr_find import LRFindResult
    r = LRFindResult(minimum=1e-3, steep=2e-3, valley=3e-3, lrs=[1e-4, 1e-3], losses=[2.0, 1.0])
    # fastai >= 2.4: SuggestedLRs(minimum=, steep=, valley=); fastai < 2.4: (lr_min, lr_steep)
    assert (r.minimum, r.steep, r.valley) == (1e-3, 2e-3, 3e-3)
    assert (r.lr_min, r.lr_steep) == (1e-3, 2e-3)
