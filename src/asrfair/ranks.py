"""The ranks of a ``torchrun``/``accelerate launch`` run meeting at the end of a stage, with a
time limit, and agreeing on a value.

``torch.distributed.barrier`` waits for ever on NCCL when a rank has died or hangs (and, on
gloo, stops after the process group's timeout with an error that names no rank). Here ranks
meet through ``monitored_barrier`` on a gloo group: after ``minutes`` the run stops with a
one-line error that names the ranks that did not arrive.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from asrfair.errors import AsrfairError

_GROUPS: dict[int, Any] = {}


def _gloo_group() -> Any:
    """The world as a gloo group (``monitored_barrier`` exists for gloo only): the default
    group when it is gloo, else one made once. Every rank must call this at the same point
    (``start_monitoring``), as every group creation is collective."""
    key = id(dist.group.WORLD)
    if key not in _GROUPS:
        gloo = dist.get_backend() == "gloo"
        _GROUPS[key] = dist.group.WORLD if gloo else dist.new_group(backend="gloo")
    return _GROUPS[key]


def start_monitoring(world: int) -> None:
    """Create the group the barriers use, at once on every rank (before any rank can fall
    behind: a later creation would itself wait without a named culprit)."""
    if world > 1:
        _gloo_group()


def wait_for_ranks(world: int, rank: int, what: str, minutes: float) -> None:
    """Every rank reaches this point before any goes on; a rank that has not arrived after
    ``minutes`` stops the run with an error naming it (on rank 0, which waits for all)."""
    if world == 1:
        return
    try:
        dist.monitored_barrier(
            group=_gloo_group(), timeout=timedelta(minutes=minutes), wait_all_ranks=True
        )
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AsrfairError(
            f"rank {rank} of {world}: the ranks did not all finish {what} within "
            f"{minutes:g} min ({first}); look at the log of the rank(s) named, or raise "
            "--barrier-minutes"
        ) from None


def agree_min(value: float, world: int) -> float:
    """The smallest of the ranks' values, on every rank: a choice every rank must share (the
    batch plan's padded seconds, chosen from each GPU's free memory) made the same."""
    if world == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN, group=_gloo_group())
    return float(tensor.item())
