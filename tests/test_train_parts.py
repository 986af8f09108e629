"""The Learner's parts against the book's definitions: schedules, optimizers, losses, metrics."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from resnette.train.losses import CutMix, LabelSmoothingCrossEntropy, Mixup, mixed_loss
from resnette.train.metrics import accuracy, error_rate, top_k_accuracy
from resnette.train.optim import SGD, Ranger, make_optimizer, param_groups, set_hypers
from resnette.train.schedules import Schedule, combined_cos


def test_one_cycle_warms_up_then_anneals_with_momentum_cycling_inversely():
    s = Schedule("one_cycle", 5, 3e-3)
    assert s(0.0) == pytest.approx((3e-3 / 25, 0.95))
    assert s(0.25) == pytest.approx((3e-3, 0.85))
    assert s(0.125) == pytest.approx(((3e-3 / 25 + 3e-3) / 2, 0.90))   # half of a cosine
    assert s(1.0) == pytest.approx((3e-3 / 1e5, 0.95))
    lr_mid, mom_mid = s(0.625)
    assert lr_mid == pytest.approx((3e-3 + 3e-3 / 1e5) / 2) and mom_mid == pytest.approx(0.90)


def test_flat_cos_is_flat_then_a_cosine():
    s = Schedule("flat_cos", 4, 1e-2, pct_start=0.75)
    assert s(0.0) == s(0.5) == s(0.75) == (1e-2, None)
    assert s(0.875)[0] == pytest.approx((1e-2 + 1e-7) / 2)
    assert combined_cos(0.0, 1, 2, 0, 0.0) == 2   # pct 0: straight into the second phase


def test_weight_decay_skips_batchnorm_and_bias():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    decay, no_decay = param_groups(m, 0.01)
    assert [p.shape for p in decay["params"]] == [(4, 3, 3, 3), (2, 4)]
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0


def test_adamw_is_fastais_adam_with_true_weight_decay():
    torch.manual_seed(0)
    m = nn.Linear(3, 2, bias=False)
    opt = make_optimizer("adamw", m, lr=0.1, wd=0.01)
    assert opt.defaults["betas"] == (0.9, 0.99) and opt.defaults["eps"] == 1e-5
    assert opt.defaults["fused"]   # one pass over every tensor on a CPU too (5x foreach's speed)
    p = m.weight.detach().clone()
    avg, sqr = torch.zeros_like(p), torch.zeros_like(p)
    for step, mom in enumerate((0.95, 0.9, 0.85), start=1):
        g = torch.randn_like(p)
        m.weight.grad = g.clone()
        set_hypers(opt, 0.1, mom)
        opt.step()
        # fastai: decoupled wd, then grad_avg/sqr_avg with dampening, debiased with the current mom
        p = p * (1 - 0.1 * 0.01)
        avg = mom * avg + (1 - mom) * g
        sqr = 0.99 * sqr + 0.01 * g * g
        p = p - 0.1 / (1 - mom ** step) * avg / ((sqr / (1 - 0.99 ** step)).sqrt() + 1e-5)
    assert torch.allclose(m.weight, p, atol=1e-6)


def test_sgd_uses_momentum_without_dampening_and_decoupled_weight_decay():
    w = nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = SGD([w], lr=0.1, momentum=0.9, weight_decay=0.1)
    w.grad = torch.tensor([1.0, 1.0])
    opt.step()
    opt.step()
    # step 1: w*(1-0.01) - 0.1*g; step 2: buf = 0.9*g + g
    w1 = torch.tensor([1.0, -2.0]) * 0.99 - 0.1
    assert torch.allclose(w, w1 * 0.99 - 0.1 * 1.9)


def test_ranger_takes_momentum_steps_early_and_looks_ahead_every_six():
    g = torch.tensor([0.5, -1.0])
    fast = nn.Parameter(torch.zeros(2))
    look = nn.Parameter(torch.zeros(2))
    opt_fast, opt_look = Ranger([fast], lr=0.1, k=10**6), Ranger([look], lr=0.1)
    for step in range(1, 7):
        for p, o in ((fast, opt_fast), (look, opt_look)):
            p.grad = g.clone()
            o.step()
        if step == 3:   # RAdam's variance estimate is not trusted yet: plain (debiased) momentum
            assert torch.allclose(fast, -3 * 0.1 * g)
    assert torch.allclose(look, 0.5 * fast)    # slow weights pulled halfway to the fast ones


def test_ranger_minimises_a_quadratic():
    w = nn.Parameter(torch.tensor([3.0, -4.0]))
    opt = Ranger([w], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        (w ** 2).sum().backward()
        opt.step()
    assert w.norm() < 0.05


def test_label_smoothing_is_fastais_formula():
    pred, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    logp = pred.log_softmax(1)
    want = 0.9 * nn.functional.nll_loss(logp, y) + 0.1 * (-logp.sum(1)).mean() / 5
    assert LabelSmoothingCrossEntropy(0.1)(pred, y) == pytest.approx(want.item(), rel=1e-5)


def test_mixup_keeps_the_original_image_dominant_and_blends_the_loss():
    x, y = torch.randn(16, 3, 4, 4), torch.arange(16) % 4
    g = torch.Generator().manual_seed(0)
    xm, (y2, lam) = Mixup(0.4).mix(x, y, g)
    assert (lam >= 0.5).all() and (lam <= 1).all()
    other = xm - lam.view(-1, 1, 1, 1) * x
    for i in range(16):
        j = [k for k in range(16) if torch.allclose(other[i], (1 - lam[i]) * x[k], atol=1e-5)]
        assert j and y[j[0]] == y2[i]
    pred = torch.randn(16, 4)
    ce = nn.CrossEntropyLoss()
    per = lambda t: nn.functional.cross_entropy(pred, t, reduction="none")
    assert mixed_loss(ce, pred, y, (y2, lam)) == pytest.approx((lam * per(y) + (1 - lam) * per(y2)).mean().item(), rel=1e-5)
    x2, (y3, lam2) = Mixup(0.4).mix(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(x2, xm) and torch.equal(lam2, lam)   # same seed, same mix


def test_cutmix_pastes_a_box_and_weights_the_loss_by_its_area():
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 10, 10).clone()
    xm, (y2, lam) = CutMix(1.0).mix(x, torch.arange(4), torch.Generator().manual_seed(3))
    for i in range(4):
        pasted = (xm[i, 0] != x[i, 0]).float().mean().item()
        if int(y2[i]) != i:
            assert lam[i].item() == pytest.approx(1 - pasted)
        assert set(xm[i, 0].unique().tolist()) <= {float(i), float(y2[i])}
    assert (lam == lam[0]).all()


def test_metrics_are_batch_means():   # fastai's convention (issue 10); the loop's sums: test_train_metrics
    pred = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.5, 0.3, 0.2]])
    y = torch.tensor([1, 0, 0, 1])
    assert accuracy(pred, y) == 0.5 and error_rate(pred, y) == 0.5
    assert top_k_accuracy(pred, y, k=2) == 0.75 and top_k_accuracy(pred, y) == 1.0
