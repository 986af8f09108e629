"""Training on many GPUs or machines: PyTorch's DistributedDataParallel, launched by torchrun.

    torchrun --nproc-per-node=4 -m resnette train --data imagenette-160 --bs 64   # 256 a step

torchrun starts one process per GPU and tells each who it is through environment variables
(RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Each process (a "rank") holds a
full copy of the model, trains on its own shard of every batch (the loaders do the
sharding, see data/loaders.py), and DDP averages the gradients across ranks during
backward, so every rank takes the same optimizer step: together they train exactly like
one process with a batch of `bs * world_size`.

Everything here is a no-op with one process, so the rest of the code can call it blindly.
One concern a module:
    group.py        joining and leaving the job; who this process is (`Dist`, `rank()`)
    collectives.py  sums across ranks; a lost peer becomes one clear error (`peer_failures`)
    rank0.py        things done once: rank 0 decides, each machine's first rank prepares
    ddp.py          what DDP changes in training: the wrapped model, synced batchnorm, the
                    loaders' check, the scaled learning rate
The rules they implement:
- NCCL between GPUs, Gloo between CPUs (Gloo is what the tests use on 127.0.0.1).
- Every collective has a timeout, so a rank that died or hangs ends the job with an error
  naming the problem instead of leaving the others waiting forever.
- Only rank 0 prints and writes files; each machine's local rank 0 downloads and decodes the
  data while the other ranks on that machine wait, then they read its cache.
- Metrics are reduced as SUMS and COUNTS (never as averages of averages), so every image
  counts once whatever the shard sizes.
"""
from .collectives import (all_reduce_sum, broadcast_buffers, mean_and_any, peer_failures,
                          sum_over_ranks)
from .ddp import check_sharded, scale_lr, sync_batchnorm, wrap_ddp
from .group import (DEFAULT_TIMEOUT_S, PREPARE_TIMEOUT_S, TIMEOUT_ENV, Dist, assigned_rank,
                    in_job, init, is_main, launched, rank, restart_count, shutdown, timeout_s,
                    world_size)
from .rank0 import local_rank0_first, on_rank0

__all__ = ["Dist", "init", "shutdown", "launched", "in_job", "rank", "world_size", "is_main",
           "assigned_rank", "restart_count",
           "timeout_s", "TIMEOUT_ENV", "DEFAULT_TIMEOUT_S", "PREPARE_TIMEOUT_S",
           "all_reduce_sum", "sum_over_ranks", "mean_and_any", "broadcast_buffers",
           "peer_failures", "local_rank0_first", "on_rank0",
           "wrap_ddp", "sync_batchnorm", "check_sharded", "scale_lr"]
