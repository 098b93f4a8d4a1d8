"""Real multi-process runs on the CPU: gloo process groups started with torch.multiprocessing.

A sharded transcription killed partway on 2 ranks and resumed on 3 must transcribe every clip
exactly once; a rank that never reaches a barrier must stop the others with an error naming it
instead of a hang; the ranks agree on the batch plan's padded seconds.
"""

from __future__ import annotations

import json
import os
import socket
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch.distributed as dist
import torch.multiprocessing as mp

from asrfair.audio import write_clip
from asrfair.audit_options import RunSettings
from asrfair.errors import AsrfairError
from asrfair.infer import Clip
from asrfair.runs import done_ids, rank_files
from conftest import Killed, dying_model

N_CLIPS = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _join(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from asrfair.ranks import start_monitoring

    start_monitoring(world)


def _transcribe(rank: int, world: int, port: int, root: str, clips: list[Clip], stop: int) -> None:
    """One rank of the infer stage, as an audit runs it; the model stops after ``stop``
    batches (-1: never). Every clip the model is asked for is logged to asked.RANK.WORLD."""
    from asrfair.pipeline import transcribe_sharded

    _join(rank, world, port)
    log = Path(root) / f"asked.{rank}.{world}"

    def record(waves: Sequence[np.ndarray]) -> None:
        with (Path(root) / f"lengths.{rank}.{world}").open("a") as handle:
            handle.write("".join(f"{len(w)}\n" for w in waves))

    model = dying_model(stop, record)

    def extra(utt: str, hyp: str) -> dict[str, str]:
        with log.open("a") as handle:
            handle.write(utt + "\n")
        return {}

    settings = RunSettings(out=Path(root) / "run", batch_seconds=6.0, progress=False)
    try:
        transcribe_sharded(model, clips, settings, (rank, world), extra=extra)
    except Killed:
        pass
    finally:
        dist.destroy_process_group()


def test_a_two_rank_run_killed_partway_resumes_on_three_ranks(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    clips = []
    for i, n in enumerate(rng.integers(4_000, 32_000, N_CLIPS)):
        cache = write_clip(tmp_path / f"c{i}.i16", np.zeros(int(n), np.float32))
        clips.append(Clip(f"u{i:03d}", cache, int(n)))
    (tmp_path / "run").mkdir()
    mp.spawn(_transcribe, args=(2, _free_port(), str(tmp_path), clips, 3), nprocs=2)
    first = {u for p in rank_files(tmp_path / "run") for u in done_ids(p)}
    assert 0 < len(first) < N_CLIPS  # killed partway, nothing merged yet
    mp.spawn(_transcribe, args=(3, _free_port(), str(tmp_path), clips, -1), nprocs=3)
    merged = tmp_path / "run" / "predictions.jsonl"
    lines = [json.loads(line) for line in merged.read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == sorted(c.id for c in clips)
    assert all(
        r["hyp"] == str(c.n_samples)
        for r, c in zip(sorted(lines, key=lambda r: r["id"]), clips, strict=True)
    )
    assert not rank_files(tmp_path / "run")
    asked = Counter(u for log in tmp_path.glob("asked.*") for u in log.read_text().split())
    assert asked == Counter({c.id: 1 for c in clips})  # every clip written exactly once
    # and the model was asked for each clip's length exactly as often as it occurs
    lengths = Counter(int(n) for log in tmp_path.glob("lengths.*") for n in log.read_text().split())
    assert lengths == Counter(c.n_samples for c in clips)


def _late(rank: int, world: int, port: int, root: str) -> None:
    """Rank 1 never reaches the second barrier; rank 0 writes what it was told."""
    from asrfair.ranks import agree_min, wait_for_ranks

    _join(rank, world, port)
    agreed = agree_min(320.0 - 100 * rank, world)  # each GPU's own choice: 320 and 220 s
    wait_for_ranks(world, rank, "the start", 0.2)
    if rank == 1:
        Path(root, "agreed.1").write_text(str(agreed))
        return
    try:
        wait_for_ranks(world, rank, "transcription", 0.02)
    except AsrfairError as exc:
        Path(root, "error.0").write_text(str(exc))
    Path(root, "agreed.0").write_text(str(agreed))


def test_a_rank_that_never_arrives_is_named_instead_of_a_hang(tmp_path: Path) -> None:
    mp.spawn(_late, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    message = (tmp_path / "error.0").read_text()
    assert message.startswith("rank 0 of 2: the ranks did not all finish transcription within")
    assert "Ranks 1 failed to pass monitoredBarrier" in message and "\n" not in message
    assert (tmp_path / "agreed.0").read_text() == (tmp_path / "agreed.1").read_text() == "220.0"


def test_one_process_needs_no_group() -> None:
    from asrfair.ranks import agree_min, wait_for_ranks

    wait_for_ranks(1, 0, "anything", 0.0)  # returns at once, no process group exists
    assert agree_min(61.5, 1) == 61.5
