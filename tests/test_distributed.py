"""Training with DistributedDataParallel under torchrun: two processes with Gloo on this CPU.

The claims: two ranks with half the batch each train like one process with the whole batch
(exactly, for a net without batchnorm; within noise for the CLI's batchnorm nets); every
validation image counts once; only rank 0 writes; a resumed DDP run continues from its
checkpoint (test_distributed_killed.py: a rank that dies ends the job with a clear error in
bounded time).

Every job is a subprocess with a timeout, so nothing here can hang CI. This file is also the
worker script of the multi-process checks: `torchrun ... tests/test_distributed.py DIR`
runs `_worker` below in each rank.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ddp_jobs import finish, needs_mnist, read_rows, torchrun, train_args
from resnette.train import distributed
from resnette.utils import ResnetteError

# ---- a tiny problem without batchnorm: DDP must reproduce one process exactly ----------------
def tiny_data(rank: int, world_size: int, bs: int):
    """Three classes of 16 px images (a square in the class's colour, plus noise); 41 valid
    images, so the two ranks' validation shards differ in length (21 and 20)."""
    from resnette.data import from_arrays
    rng = np.random.default_rng(0)
    n = 96 + 41
    labels = rng.integers(0, 3, n)
    images = rng.integers(0, 60, (n, 16, 16, 3)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 4:12, 4:12, c] += 150
    is_valid = np.arange(n) >= 96
    return from_arrays(images, labels, [f"img{i}" for i in range(n)], is_valid, ~is_valid,
                       ["a", "b", "c"], ["a", "b", "c"], size=16, bs=bs, augment=False,
                       rank=rank, world_size=world_size, prefetch=0, workers=0)


def tiny_learner(rank: int, world_size: int, bs: int, run_dir: Path | None = None):
    from resnette.train import Learner
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))
    return Learner(tiny_data(rank, world_size, bs), net, precision="fp32", channels_last=False,
                   run_dir=run_dir, quiet=True)


def _worker(out: Path) -> None:
    """What each of the two ranks runs (see test_two_ranks_train_exactly_like_one_process)."""
    d = distributed.init("cpu")
    result: dict = {"rank": d.rank, "world_size": d.world_size}
    marker = out / "prepared"

    def prepare() -> str:   # local rank 0 builds "the cache"; the other rank must find it
        if d.local_rank == 0:
            time.sleep(0.5)
            marker.write_text("ready")
            return "built"
        return "found" if marker.exists() else "missing"

    result["prepare"] = distributed.local_rank0_first(d, prepare)
    result["chosen"] = distributed.on_rank0(d, lambda: f"chosen by rank {distributed.rank()}")
    try:
        distributed.on_rank0(d, lambda: (_ for _ in ()).throw(ResnetteError("folder taken")))
    except ResnetteError as e:
        result["rank0_error"] = str(e)
    result["mean_and_any"] = distributed.mean_and_any(torch.tensor([float(d.rank), 1.0]), d.rank == 1)

    learn = tiny_learner(d.rank, d.world_size, bs=8, run_dir=out / "run")
    learn.fit_one_cycle(2, 1e-2)
    result["losses"] = learn.recorder.losses
    result["rows"] = [{k: v for k, v in r.items() if k != "time"} for r in learn.recorder.rows]
    result["valid_n"] = learn.dls.valid.n
    weights = [p.detach().clone() for p in learn.model.parameters()]
    result["checksum"] = float(sum(w.double().sum() for w in weights))
    again = tiny_learner(d.rank, d.world_size, bs=8, run_dir=out / "run")
    again.fit_one_cycle(2, 1e-2, resume=True)   # every rank loads the same checkpoint
    result["resumed_same"] = all(torch.equal(a, b) for a, b in zip(weights, again.model.parameters()))
    (out / f"rank{d.rank}.json").write_text(json.dumps(result))

    # A rank that stops answering: rank 1 hangs, rank 0's next collective must time out.
    if d.rank == 1:
        time.sleep(120)
    try:
        distributed.all_reduce_sum(torch.ones(1), "the hang test")
    except ResnetteError as e:
        print(f"error: {e}", flush=True)
        sys.exit(2)


# ---- one process: everything is a no-op ------------------------------------------------------
def test_without_a_launcher_nothing_starts_and_helpers_pass_through(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    d = distributed.init("cpu")
    assert d == distributed.Dist(0, 0, 1, "cpu") and d.is_main and not d.is_distributed
    assert not torch.distributed.is_initialized()
    t = torch.tensor([1.0, 2.0])
    assert distributed.all_reduce_sum(t) is t and t.tolist() == [1.0, 2.0]
    assert distributed.mean_and_any(t, True) == ([1.0, 2.0], True)
    assert distributed.sum_over_ranks([torch.tensor(3.0), 4]) == [3.0, 4.0]
    calls = []
    assert distributed.local_rank0_first(d, lambda: calls.append(1) or "x") == "x" and calls == [1]
    assert distributed.on_rank0(d, lambda: 5) == 5
    assert distributed.scale_lr(3e-3, 1) == 3e-3 and distributed.scale_lr(3e-3, 8) == pytest.approx(2.4e-2)


def test_timeouts_come_from_the_environment(monkeypatch):
    monkeypatch.delenv(distributed.TIMEOUT_ENV, raising=False)
    assert distributed.timeout_s() == distributed.DEFAULT_TIMEOUT_S == 600
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "30")
    assert distributed.timeout_s() == 30
    for bad in ("soon", "0", "-5"):
        monkeypatch.setenv(distributed.TIMEOUT_ENV, bad)
        with pytest.raises(ResnetteError, match="RESNETTE_DIST_TIMEOUT"):
            distributed.timeout_s()


def test_the_assigned_rank_holds_without_a_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.setenv("RANK", "1")    # left over from elsewhere: no launcher, so rank 0
    assert distributed.assigned_rank() == 0 and distributed.restart_count() == 0
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "2")
    assert distributed.assigned_rank() == 1 and distributed.rank() == 0   # no group joined
    assert distributed.restart_count() == 2
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ResnetteError, match="torchrun"):
        distributed.assigned_rank()


def test_each_rank_gets_the_gpu_of_its_local_rank_only(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ResnetteError, match="LOCAL_RANK"):
        distributed.init("cuda:3")       # an explicit other GPU under torchrun is refused
    if torch.cuda.device_count() < 2:
        with pytest.raises(ResnetteError, match="--nproc-per-node"):
            distributed.init("cuda")     # more ranks than GPUs
    monkeypatch.delenv("RANK")
    with pytest.raises(ResnetteError, match="torchrun"):
        distributed.init("cpu")


def test_sync_bn_converts_every_batchnorm_and_keeps_the_weights():
    from resnette.models import create_model
    model = create_model("xresnet18", n_out=10)
    keys = list(model.state_dict())
    assert distributed.sync_batchnorm(model, "cpu", 1) is model      # one process: nothing to sync
    with pytest.raises(ResnetteError, match="GPUs"):
        distributed.sync_batchnorm(model, "cpu", 2)
    synced = distributed.sync_batchnorm(model, "cuda:0", 2)
    kinds = {type(m) for m in synced.modules()}
    assert nn.SyncBatchNorm in kinds and nn.BatchNorm2d not in kinds
    assert list(synced.state_dict()) == keys     # checkpoints load either way


def translated(error: BaseException, every_error: bool = False) -> BaseException:
    """What leaves `peer_failures("training")` when `error` is raised inside it."""
    try:
        with distributed.peer_failures("training", every_error=every_error):
            raise error
    except BaseException as e:   # noqa: BLE001 - the test looks at whatever came out
        return e
    raise AssertionError("nothing was raised")


def test_one_context_manager_turns_a_lost_peer_into_one_line_and_keeps_a_bug():
    gone = RuntimeError("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection "
                        "closed by peer [127.0.0.1]:53409")
    msg = str(translated(gone))
    assert isinstance(translated(gone), ResnetteError)
    assert msg.startswith("rank 0 lost contact with another training process during training "
                          "(Connection closed by peer [127.0.0.1]:53409)")
    assert "--resume" in msg and "\n" not in msg and "pytorch/third_party" not in msg
    nccl = torch.distributed.DistBackendError("NCCL watchdog timeout")
    assert "(NCCL watchdog timeout)" in str(translated(nccl))
    bug = RuntimeError("mat1 and mat2 shapes cannot be multiplied")
    assert translated(bug) is bug                   # a bug keeps its own error and traceback
    assert isinstance(translated(bug, every_error=True), ResnetteError)   # preparation group
    stop = KeyboardInterrupt()
    assert translated(stop) is stop


def test_ddp_refuses_loaders_not_split_for_the_job():
    dls = tiny_data(0, 1, 8)
    with pytest.raises(ResnetteError, match="world_size=2"):
        distributed.check_sharded(dls.train, 2)
    distributed.check_sharded(tiny_data(1, 2, 8).train, 2)


# ---- two processes ---------------------------------------------------------------------------
def test_two_ranks_train_exactly_like_one_process(tmp_path):
    """Without batchnorm, DDP with bs 8 on each of 2 ranks IS one process with bs 16: the
    averaged gradients are the global batch's, so the losses agree to float rounding."""
    start = time.perf_counter()
    job = torchrun([str(Path(__file__).resolve()), str(tmp_path)], tmp_path,
                   RESNETTE_DIST_TIMEOUT="5")
    out = finish(job)
    hang_s = time.perf_counter() - start
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    r0, r1 = ranks
    assert r0["world_size"] == 2 and r1["rank"] == 1, out[-2000:]
    # helpers: local rank 0 prepared first, rank 0 chose for all, errors reach every rank
    assert (r0["prepare"], r1["prepare"]) == ("built", "found")
    assert r0["chosen"] == r1["chosen"] == "chosen by rank 0"
    assert r0["rank0_error"] == r1["rank0_error"] == "folder taken"
    assert r0["mean_and_any"] == r1["mean_and_any"] == [[0.5, 1.0], True]
    # the validation shards differ (21 + 20 images) yet the metrics are the whole set's
    assert (r0["valid_n"], r1["valid_n"]) == (21, 20)
    single = tiny_learner(0, 1, bs=16)
    single.fit_one_cycle(2, 1e-2)
    assert r0["losses"] == r1["losses"]       # both ranks record the global batch's loss
    assert r0["losses"] == pytest.approx(single.recorder.losses, rel=1e-4, abs=1e-6)
    for got, want in zip(r0["rows"], single.recorder.rows):
        assert got == pytest.approx({k: v for k, v in want.items() if k != "time"}, rel=1e-4, abs=1e-6)
    assert r0["rows"] == r1["rows"] and r0["rows"][-1]["accuracy"] > 0.9
    assert r0["checksum"] == r1["checksum"]       # one model, replicated
    assert r0["resumed_same"] and r1["resumed_same"]
    # rank 0 wrote the run folder, once
    run = tmp_path / "run"
    assert [r["epoch"] for r in read_rows(run / "metrics.csv")] == ["0", "1"]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "metrics.csv", "model.safetensors"]
    # then rank 1 hung: rank 0's collective timed out after 5 s and the job ended
    assert job.returncode != 0
    assert "error: rank 0 lost contact with another training process during the hang test" in out
    assert "Timed out" in out and hang_s < 60


@needs_mnist
def test_two_ranks_match_one_process_on_mnist_tiny(tmp_path):
    """`torchrun -m resnette train` with bs 32 on each of 2 ranks vs `resnette train` with 64.

    Not bitwise: batchnorm normalises over each rank's 32 images instead of 64. So the
    numbers agree within a small tolerance."""
    from resnette.cli import main
    torch.set_num_threads(1)
    job = torchrun(["-m", "resnette", *train_args(tmp_path / "ddp", bs=32)], tmp_path)
    assert main(train_args(tmp_path / "single", bs=64)) == 0   # meanwhile, in this process
    out = finish(job)
    assert job.returncode == 0, out[-3000:]
    assert out.count("run saved in") == 1          # only rank 0 talks
    (one,), (two,) = read_rows(tmp_path / "single" / "metrics.csv"), read_rows(tmp_path / "ddp" / "metrics.csv")
    assert float(two["train_loss"]) == pytest.approx(float(one["train_loss"]), abs=0.05)
    assert float(two["valid_loss"]) == pytest.approx(float(one["valid_loss"]), abs=0.05)
    assert float(two["accuracy"]) == pytest.approx(float(one["accuracy"]), abs=0.02)
    assert float(two["accuracy"]) > 0.9
    # the final evaluation covers the whole valid set (699 images), not rank 0's half
    ev = json.loads((tmp_path / "ddp" / "evaluation.json").read_text())
    assert ev["n"] == 699 and ev["accuracy"] == pytest.approx(float(two["accuracy"]), abs=1e-6)


if __name__ == "__main__":   # one rank of test_two_ranks_train_exactly_like_one_process
    _worker(Path(sys.argv[1]))
