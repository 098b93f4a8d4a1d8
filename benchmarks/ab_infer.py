"""Two versions of the infer stage timed in one process, interleaved, on the same model and clips.

    git show main:src/asrfair/infer.py > /tmp/infer_main.py
    PYTHONPATH=src .venv/bin/python benchmarks/ab_infer.py /tmp/infer_main.py [--size demo]

On a shared machine the load drifts by several times within minutes, so two benchmark runs a
minute apart say little; alternating the two versions batch plan by batch plan, many times, and
comparing the best and median of each, does. The other file is loaded as its own module (its
imports of the rest of asrfair resolve to this checkout) and its ``Transcriber`` and
``transcribe_to_file`` are driven exactly as this checkout's, from the same cached clips.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_infer import make_clips, make_model

from asrfair import infer


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("infer_other", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("other", type=Path, help="the infer.py to compare with")
    parser.add_argument("--size", choices=["tiny", "demo"], default="tiny")
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch-seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=0, help="this version's loader workers")
    args = parser.parse_args()
    other = load(args.other)
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, processor = make_model(args.size, root / "model")
        clips, waves = make_clips(root, args.clips)
        versions = {"other": other, "this": infer}
        transcribers = {k: m.Transcriber(model, processor, device) for k, m in versions.items()}
        times: dict[str, list[float]] = {k: [] for k in versions}
        for round_ in range(args.rounds + 1):  # round 0 warms up
            for name, module in versions.items():
                out = root / f"{name}{round_}.jsonl"
                start = time.perf_counter()
                extra = {"workers": args.workers} if name == "this" else {}
                module.transcribe_to_file(
                    transcribers[name],
                    clips,
                    out,
                    batch_seconds=args.batch_seconds,
                    progress=False,
                    **extra,
                )
                if round_:
                    times[name].append(time.perf_counter() - start)
        same = (root / "other0.jsonl").read_text() == (root / "this0.jsonl").read_text()
    audio = sum(len(w) for w in waves) / 16_000
    print(
        f"{args.size}, {args.clips} clips, {audio:.0f} s of audio, {args.rounds} rounds each; "
        f"this version with {args.workers} loader workers"
    )
    print("| version | best audio-s/s | median audio-s/s |")
    print("|---|---:|---:|")
    for name, seconds in times.items():
        best, median = audio / min(seconds), audio / statistics.median(seconds)
        print(f"| {name} | {best:,.0f} | {median:,.0f} |")
    print(f"identical predictions files: {same}")


if __name__ == "__main__":
    main()
