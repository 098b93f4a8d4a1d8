"""A small, seeded slice of benchmarks/coverage.py: fails if coverage or type-I error drifts.

The full study (thousands of replicates, every scenario) is run by hand and recorded in
benchmarks/RESULTS.md; these few hundred replicates run on every CI run. Each bound is the
goal less (or plus) three Monte-Carlo standard errors, so a correct method fails by chance
about once in a thousand runs, while the old methods (percentile intervals, raw-difference
permutations) fail them by far.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

from asrfair.stats import StatsConfig

REPS = 300


@pytest.fixture(scope="module")
def coverage() -> ModuleType:
    path = Path(__file__).parents[1] / "benchmarks" / "coverage.py"
    spec = importlib.util.spec_from_file_location("asrfair_coverage_study", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _three_se(p: float) -> float:
    return 3 * math.sqrt(p * (1 - p) / REPS)


def test_default_interval_covers_with_three_speakers(coverage: ModuleType) -> None:
    method = StatsConfig().interval
    group = coverage.Group(3, spread="wide")
    result = coverage.group_coverage(group, REPS, 199, seed=1, methods=(method, "percentile"))
    # Percentile intervals cover about 0.75 here, so this fails if they come back as default.
    assert result[method] >= 0.90 - _three_se(0.90)
    assert result["percentile"] < result[method]


def test_default_interval_covers_with_five_spread_out_speakers(coverage: ModuleType) -> None:
    method = StatsConfig().interval
    result = coverage.group_coverage(coverage.Group(5, spread="wide"), REPS, 199, seed=4)
    # The linearised t interval covers about 0.88 here: the default must do better.
    assert result[method] >= 0.90 - _three_se(0.90)
    assert result[method] > result["t"]


def test_default_interval_covers_with_ten_speakers(coverage: ModuleType) -> None:
    method = StatsConfig().interval
    group = coverage.Group(10, spread="wide", length="long")
    result = coverage.group_coverage(group, REPS, 199, seed=2, methods=(method,))
    assert result[method] >= 0.93 - _three_se(0.93)


def test_gap_test_holds_its_level_for_ten_spread_out_against_forty_tight(
    coverage: ModuleType,
) -> None:
    # The review's case: the raw-difference permutation test rejected 17% here.
    a, b = coverage.Group(10, spread="moderate"), coverage.Group(40, spread="tight")
    result = coverage.gap_study(a, b, REPS, 199, seed=3, methods=(StatsConfig().interval,))
    assert result["new_test"] <= 0.06 + _three_se(0.06)
    assert result["old_test"] > result["new_test"]  # the raw difference over-rejects here
    assert result[StatsConfig().interval] >= 0.90 - _three_se(0.90)
