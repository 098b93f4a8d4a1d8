"""Sharded transcription across ranks and resumes: every test clip is transcribed exactly once.

A review simulated the old plan (each rank planned batches over its own unfinished clips, then
took its share) and found clips no rank transcribed. These tests run the real planner, writer
and merge on 2,000 clips of varied lengths, kill ranks between batches, and resume with another
world size; the model is a stand-in that records what it was asked to transcribe.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from asrfair import infer
from asrfair.errors import AsrfairError
from asrfair.infer import Clip, transcribe_to_file
from asrfair.runs import check_coverage, done_ids, finished_ids, merge_shards, rank_files
from conftest import Killed, dying_model

N_CLIPS = 2_000


def _clips() -> list[Clip]:
    lengths = np.random.default_rng(0).integers(8_000, 160_000, N_CLIPS)
    return [Clip(f"u{i:04d}", f"clip-{i}", int(n)) for i, n in enumerate(lengths)]


@pytest.fixture(autouse=True)
def _no_audio(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache is not under test: a clip 'loads' as silence of its length, tagged by id."""
    lengths = {c.cache: c.n_samples for c in _clips()}
    monkeypatch.setattr(infer, "load_clip", lambda cache: np.full(lengths[cache], 0.0))


def _rank(
    out: Path, clips: list[Clip], rank: int, world: int, asked: Counter[int], stop_after: int
) -> None:
    """One rank's share, as pipeline._transcribe runs it; it dies after ``stop_after`` batches."""
    model = dying_model(stop_after, lambda waves: asked.update(len(w) for w in waves))
    target = out / f"predictions.rank{rank}.jsonl" if world > 1 else out / "predictions.jsonl"
    with contextlib.suppress(Killed):
        transcribe_to_file(
            model,
            clips,
            target,
            batch_seconds=40.0,
            shard=(rank, world),
            done=finished_ids(out),
            progress=False,
        )


@pytest.mark.parametrize(("first", "then"), [(2, 3), (3, 2), (2, 1), (1, 3)])
def test_a_resume_with_another_world_size_transcribes_every_clip_once(
    tmp_path: Path, first: int, then: int
) -> None:
    clips = _clips()
    asked: Counter[int] = Counter()
    for rank in range(first):  # the first run dies partway, each rank at its own point
        _rank(tmp_path, clips, rank, first, asked, stop_after=3 + 4 * rank)
    assert 0 < len(finished_ids(tmp_path)) < N_CLIPS
    for rank in range(then):  # resumed with another number of processes, to the end
        _rank(tmp_path, clips, rank, then, asked, stop_after=-1)
    if rank_files(tmp_path):
        merge_shards(tmp_path)
    merged = tmp_path / "predictions.jsonl"
    lines = merged.read_text().splitlines()
    assert len(lines) == N_CLIPS and done_ids(merged) == {c.id for c in clips}
    assert not rank_files(tmp_path)
    # exactly once: the model was asked for each clip's length as often as it occurs
    assert asked == Counter(c.n_samples for c in clips)
    check_coverage(merged, {c.id for c in clips})


def test_a_gap_in_the_merged_predictions_stops_the_report(tmp_path: Path) -> None:
    clips = _clips()[:50]
    merged = tmp_path / "predictions.jsonl"
    transcribe_to_file(lambda w: ["x"] * len(w), clips[:40], merged, progress=False)
    with pytest.raises(AsrfairError, match=r"10 of 50 test utterances have no prediction"):
        check_coverage(merged, {c.id for c in clips})


def test_temporary_names_differ_across_hosts_sharing_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Process ids repeat on the nodes of a cluster: two nodes writing the same file of a
    shared cache must not share a temporary name."""
    import socket

    from asrfair import files

    names = []
    for host in ("node-a", "node-b"):
        monkeypatch.setattr(socket, "gethostname", lambda host=host: host)
        names.append(files.temp_path(tmp_path / "predictions.jsonl").name)
    assert names[0] != names[1]
    assert "node-a" in names[0] and names[0].endswith(".tmp.jsonl")
