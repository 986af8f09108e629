"""Under torchrun the preparation helpers share ONE Gloo group per process: `new_group` opens
connections and threads that live until the group is destroyed, so a group per call leaks
them for the whole run. `shutdown(d)` destroys it.

Two ranks with Gloo on this CPU; the job is a subprocess with a timeout. This file is also the
worker: `torchrun ... tests/test_distributed_group.py OUT_DIR` runs `_worker` in each rank.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

JOB_TIMEOUT = 120  # seconds: longer means the job hung; fail instead of blocking CI


def _worker(out_dir: Path) -> None:
    import torch.distributed as dist

    from resnette.train import distributed

    made = []
    new_group = dist.new_group

    def counting_new_group(*args, **kwargs):      # a spy in the test's own process only
        group = new_group(*args, **kwargs)
        made.append(group)
        return group

    dist.new_group = counting_new_group
    d = distributed.init("cpu")
    results = []
    for i in range(3):
        results.append(distributed.local_rank0_first(d, lambda i=i: f"prepared {i}"))
        results.append(distributed.on_rank0(d, lambda i=i: f"chosen {i} by {distributed.rank()}"))
    group = getattr(d, "prepare_group", None)
    same = group is not None and all(g is group for g in made)
    distributed.shutdown(d)
    try:                                          # the group is gone with the job
        dist.get_process_group_ranks(made[0])
        usable_after = True
    except (KeyError, RuntimeError, ValueError):
        usable_after = False
    (out_dir / f"rank{d.rank}.json").write_text(json.dumps({
        "groups_made": len(made), "same_group": same, "results": results,
        "initialized_after": dist.is_initialized(), "usable_after": usable_after}))


def test_one_gloo_group_per_process_reused_and_destroyed(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "--max-restarts=0", __file__, str(tmp_path)]
    job = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = job.communicate(timeout=JOB_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        out, _ = job.communicate()
        pytest.fail(f"the job hung for {JOB_TIMEOUT} s:\n{out[-3000:]}")
    assert job.returncode == 0, out[-3000:]
    for rank in (0, 1):
        r = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert r["groups_made"] == 1 and r["same_group"]          # six uses, one group
        assert r["results"] == [x for i in range(3) for x in (f"prepared {i}", f"chosen {i} by 0")]
        assert not r["initialized_after"] and not r["usable_after"]


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
