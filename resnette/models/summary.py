"""A model summary: each layer's output shape, parameters and multiply-adds at one input size.

It shows the chapter's point about where the work is: the early layers (large grids) hold
most of the multiply-adds, the late layers (many channels) most of the parameters.
Multiply-adds come from PyTorch's own FLOP counter (convolutions, matrix products, the
self-attention's batched products), halved: one multiply-add is two FLOPs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class Row:
    name: str            # dotted path in the model, e.g. "stage2.0.convs"
    kind: str            # the module's class name
    shape: tuple[int, ...]  # output shape for one image (batch dimension dropped)
    params: int          # parameters directly or indirectly inside this module
    macs: int            # multiply-adds for one image


@dataclass
class Summary:
    rows: list[Row]
    size: int
    c_in: int
    params: int
    trainable: int
    macs: int            # per image, forward pass
    model_name: str = ""
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"{self.model_name} at {self.c_in}x{self.size}x{self.size}"
        lines = [head, f"{'layer':<28} {'type':<20} {'output':<16} {'params':>12} {'mult-adds':>14}"]
        lines.append("-" * len(lines[-1]))
        for r in self.rows:
            shape = "x".join(map(str, r.shape))
            lines.append(f"{r.name:<28} {r.kind:<20} {shape:<16} {r.params:>12,} {r.macs:>14,}")
        lines.append("-" * len(lines[1]))
        lines.append(f"total params: {self.params:,} ({self.trainable:,} trainable)")
        lines.append(f"total multiply-adds per image: {self.macs:,} ({self.macs / 1e9:.3f} G)")
        return "\n".join(lines)


def _rows_to_show(model: nn.Module, depth: int) -> list[tuple[str, nn.Module]]:
    """Modules at nesting `depth`, plus shallower leaves (e.g. the head's parts)."""
    out = []
    for name, m in model.named_modules():
        level = 0 if name == "" else name.count(".") + 1
        if level == 0:
            continue
        if level == depth or (level < depth and not any(True for _ in m.children())):
            out.append((name, m))
    return out


def summary(model: nn.Module, size: int = 128, c_in: int = 3, depth: int = 2) -> Summary:
    """Run one `c_in` x `size` x `size` image through `model` (eval mode, no gradients) and
    tabulate the modules `depth` levels down. The model's mode is restored afterwards."""
    shown = _rows_to_show(model, depth)
    shapes: dict[str, tuple[int, ...]] = {}

    def hook_for(name: str):
        def hook(_m: nn.Module, _inp: object, out: torch.Tensor) -> None:
            shapes[name] = tuple(out.shape[1:])
        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in shown]
    was_training = model.training
    param = next(model.parameters(), None)
    x = torch.zeros(1, c_in, size, size,
                    device=param.device if param is not None else "cpu",
                    dtype=param.dtype if param is not None else torch.float32)
    counter = FlopCounterMode(display=False)
    try:
        model.eval()
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    # The counter names modules "<RootClass>.<dotted path>" and counts a module's children too.
    flops = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    root = type(model).__name__
    rows = [Row(n, type(m).__name__, shapes.get(n, ()), sum(p.numel() for p in m.parameters()),
                flops.get(f"{root}.{n}", 0) // 2)
            for n, m in shown]
    return Summary(rows=rows, size=size, c_in=c_in,
                   params=sum(p.numel() for p in model.parameters()),
                   trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
                   macs=counter.get_total_flops() // 2, model_name=root)
