"""Print the README's demo table from finished audit runs, so its numbers are never typed by hand.

    for s in notrain all female male; do ...; done   # the four audits, see the README
    .venv/bin/python scripts/readme_demo_table.py runs/readme-notrain runs/readme-all \
        runs/readme-female runs/readme-male

Each row: the command, what the model was fine-tuned on (utterances per gender), overall WER and
WER per gender with their intervals, the female - male WER gap with its interval, and the gap's
p-value, all from the run's metrics.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def pct(value: float | None, ci: list[float | None] | None) -> str:
    if value is None:
        return "-"
    low, high = ci or (None, None)
    ends = [f"{100 * e:.1f}" if e is not None else "open" for e in (low, high)]
    return f"{100 * value:.1f} [{ends[0]}, {ends[1]}]"


def p_text(p: float) -> str:
    return f"{p:.2f}" if p >= 0.01 else f"{p:.1g}"


def row(run: Path) -> str:
    data: dict[str, Any] = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    info = data["run"]
    groups = {g["group"]: g for g in data["groups"]["gender"]}
    gap = next(
        g
        for g in data["gaps"]["gender"]
        if g["metric"] == "wer" and {g["a"], g["b"]} == {"female", "male"}
    )
    sign = 1 if gap["a"] == "female" else -1  # shown as female - male
    diff = sign * gap["diff"]
    low, high = (sign * e if e is not None else None for e in gap["diff_ci"])
    if sign < 0:
        low, high = high, low
    if info["no_train"]:
        command, trained = "`asrfair audit --no-train`", "nothing"
    else:
        subset = info["train_subset"]
        command = (
            "`asrfair audit`" if subset == "all" else f"`asrfair audit --train-subset {subset}`"
        )
        sizes = {g["group"]: g["n_utterances"] for g in info["subset_size"]["gender"]}
        trained = f"{subset} ({sizes.get('female', 0)}/{sizes.get('male', 0)})"
    return (
        f"| {command} | {trained} | {pct(data['overall']['wer'], data['overall']['wer_ci'])} | "
        f"{pct(groups['female']['wer'], groups['female']['wer_ci'])} | "
        f"{pct(groups['male']['wer'], groups['male']['wer_ci'])} | "
        f"{100 * diff:.1f} [{100 * low:.1f}, {100 * high:.1f}] | {p_text(gap['p_value'])} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    print(
        "| command | fine-tuned on (utts F/M) | WER | WER female | WER male | gap F - M (pts) | p |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for run in args.runs:
        print(row(run))


if __name__ == "__main__":
    main()
