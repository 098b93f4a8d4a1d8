"""Coverage of the regression plugin's adjusted rate-ratio intervals, measured by simulation.

Two groups, A (the reference) and B, whose true word-error rate ratio is 1.5 at equal
utterance length. Each speaker has a log-normal random intercept (SD 0.4). Group B reads
shorter utterances (4-10 words against A's 8-20), and shorter utterances have a higher
per-word error rate (log rate falls by 0.08 per word), so the raw ratio B/A overstates 1.5.
Each replicate fits, through the plugin's own ``fit`` (the code ``--metrics regression``
runs), the GEE adjusted for n_words with each sandwich variance, the GLMM, and the GEE without
covariates (the raw ratio with an interval), and records whether each 95% interval holds 1.5.

    python plugins/asrfair-regression/simulate.py                  # 500 replicates, 2 workers
    python plugins/asrfair-regression/simulate.py --replicates 50  # a quick look

Prints a Markdown table: coverage with its Monte-Carlo standard error sqrt(p(1-p)/R), and the
mean estimated ratio (geometric mean over replicates).
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from asrfair_regression import Data, Options, fit
from asrfair_regression.model import FitError

TRUE_RATIO = 1.5
SPEAKER_SD = 0.4
UTTERANCES = 15  # per speaker
BASE_RATE = 0.10  # per word at 10 words, group A
LENGTH_SLOPE = -0.08  # log rate per extra word
FITS = {
    "GEE + n_words, bias-reduced (default)": Options(["n_words"], "A", "gee", "bias-reduced"),
    "GEE + n_words, robust": Options(["n_words"], "A", "gee", "robust"),
    "GLMM + n_words": Options(["n_words"], "A", "glmm", "bias-reduced"),
    "GEE, no covariate (raw)": Options([], "A", "gee", "bias-reduced"),
}


def simulate(speakers: int, rng: np.random.Generator) -> Data:
    """One data set: ``speakers`` speakers per group, UTTERANCES utterances each."""
    labels, words, errors, clusters = [], [], [], []
    for group, (low, high), ratio in (("A", (8, 20), 1.0), ("B", (4, 10), TRUE_RATIO)):
        for s in range(speakers):
            n = rng.integers(low, high + 1, size=UTTERANCES)
            intercept = rng.normal(-(SPEAKER_SD**2) / 2, SPEAKER_SD)
            rate = BASE_RATE * ratio * np.exp(LENGTH_SLOPE * (n - 10) + intercept)
            errors.append(rng.poisson(n * rate))
            words.append(n)
            labels += [group] * UTTERANCES
            clusters += [f"{group}{s}"] * UTTERANCES
    n_words = np.concatenate(words).astype(float)
    return Data(
        labels=np.array(labels),
        errors=np.concatenate(errors).astype(float),
        words=n_words,
        clusters=np.array(clusters),
        covariates={"n_words": (n_words - n_words.mean()) / n_words.std()},
        left_out=0,
    )


def replicate(args: tuple[int, int]) -> dict[str, tuple[bool, float] | None]:
    """Whether each fit's interval covers the truth, and its estimate (None: no fit)."""
    speakers, seed = args
    data = simulate(speakers, np.random.default_rng(seed))
    out: dict[str, tuple[bool, float] | None] = {}
    for name, options in FITS.items():
        if not options.covariates:
            data = Data(data.labels, data.errors, data.words, data.clusters, {}, 0)
        try:
            result, _ = fit(data, ["A", "B"], "A", options)
        except FitError:
            out[name] = None
            continue
        value, low, high, _ = result.ratio("group:B", 0.95)
        out[name] = (low <= TRUE_RATIO <= high, value)
    a, b = data.labels == "A", data.labels == "B"
    raw = (data.errors[b].sum() / data.words[b].sum()) / (
        data.errors[a].sum() / data.words[a].sum()
    )
    out["raw WER ratio (no interval)"] = (False, float(raw))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=500)
    parser.add_argument("--speakers", default="40,10", help="speakers per group, comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    started = time.time()
    print("| speakers/group | estimator | coverage of 1.5 (MC SE) | mean ratio | failed fits |")
    print("|---:|:---|---:|---:|---:|")
    with ProcessPoolExecutor(args.workers) as pool:
        for speakers in (int(s) for s in args.speakers.split(",")):
            jobs = [
                (speakers, args.seed * 1_000_003 + speakers * 10_007 + r)
                for r in range(args.replicates)
            ]
            results = list(pool.map(replicate, jobs, chunksize=10))
            for name in [*FITS, "raw WER ratio (no interval)"]:
                found = [r[name] for r in results if r[name] is not None]
                ratio = float(np.exp(np.mean([np.log(v) for _, v in found])))
                failed = len(results) - len(found)
                if name.startswith("raw WER"):
                    cover = "-"
                else:
                    p = float(np.mean([c for c, _ in found]))
                    cover = f"{p:.3f} ({np.sqrt(p * (1 - p) / len(found)):.3f})"
                print(f"| {speakers} | {name} | {cover} | {ratio:.3f} | {failed} |")
    print(
        f"\n{args.replicates} replicates per size, seed {args.seed}, "
        f"{time.time() - started:.0f} s with {args.workers} workers"
    )


if __name__ == "__main__":
    main()
