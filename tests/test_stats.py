import numpy as np
import pytest

from asrfair import stats
from asrfair.stats import StatsConfig


def _sums(errors: list[float], words: list[float]) -> np.ndarray:
    return np.column_stack([errors, words]).astype(float)


def test_unit_sums_add_utterances_per_speaker() -> None:
    values = np.array([[1, 10], [2, 5], [3, 7]], dtype=float)
    sums = stats.unit_sums(values, np.array(["b", "a", "b"]))
    np.testing.assert_array_equal(sums, [[4, 17], [2, 5]])


def test_resample_totals_matches_a_naive_loop_with_the_same_draws() -> None:
    sums = _sums([1, 5, 2, 8], [10, 20, 15, 30])
    fast = stats.resample_totals(sums, 50, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    picks = rng.integers(0, 4, size=(50, 4))
    naive = np.array([sums[row].sum(axis=0) for row in picks])
    np.testing.assert_allclose(fast, naive)


def test_resample_totals_is_independent_of_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    sums = _sums(list(range(30)), [10] * 30)
    whole = stats.resample_totals(sums, 200, np.random.default_rng(1))
    monkeypatch.setattr(stats, "_CHUNK_CELLS", 30 * 7)  # 7 draws per chunk
    chunked = stats.resample_totals(sums, 200, np.random.default_rng(1))
    assert whole.shape == chunked.shape == (200, 2)
    np.testing.assert_array_equal(whole, chunked)  # memory bound, same numbers
    assert np.all(chunked[:, 1] == 300)


def test_rate_is_corpus_level_not_mean_of_utterances() -> None:
    est = stats.estimate_rate(_sums([1, 9], [1, 99]), StatsConfig(n_boot=0))
    assert est.value == pytest.approx(10 / 100)  # the mean of rates would be 0.545


def test_bootstrap_is_seeded_and_keyed() -> None:
    sums = _sums([3, 1, 4, 1, 5, 9, 2, 6], [20] * 8)
    cfg = StatsConfig(n_boot=500, seed=3)
    a = stats.estimate_rate(sums, cfg, "gender", "female")
    b = stats.estimate_rate(sums, cfg, "gender", "female")
    c = stats.estimate_rate(sums, cfg, "gender", "male")
    assert a.draws is not None and b.draws is not None and c.draws is not None
    np.testing.assert_array_equal(a.draws, b.draws)
    assert not np.array_equal(a.draws, c.draws)
    lo, hi = a.interval(0.95) or (0.0, 0.0)
    assert lo < a.value < hi  # type: ignore[operator]


def test_cluster_interval_is_wider_than_utterance_interval_for_correlated_speakers() -> None:
    # Two kinds of speaker: all their utterances good, or all bad. Resampling utterances
    # ignores that correlation and understates the uncertainty.
    rng = np.random.default_rng(0)
    speakers = np.repeat(np.arange(20), 25)
    bad = (speakers % 2 == 0).astype(float)
    errors = bad * rng.integers(3, 6, size=speakers.size) + (1 - bad) * rng.integers(0, 2, 500)
    values = np.column_stack([errors, np.full(speakers.size, 10.0)])
    cfg = StatsConfig(n_boot=2000)
    by_speaker = stats.estimate_rate(stats.unit_sums(values, speakers), cfg, "x")
    by_utterance = stats.estimate_rate(stats.unit_sums(values, np.arange(500)), cfg, "x")
    width = lambda e: np.subtract(*reversed(e.interval(0.95)))  # noqa: E731
    assert width(by_speaker) > 2 * width(by_utterance)


def test_undefined_rate_has_no_interval_and_no_division_by_zero() -> None:
    est = stats.estimate_rate(_sums([8, 0], [0, 0]), StatsConfig(n_boot=100))
    assert est.value is None
    assert est.interval(0.95) is None
    assert est.numerator == 8


def test_draws_where_a_unit_has_no_words_stay_defined_elsewhere() -> None:
    # One speaker has only empty references: draws made only of it are undefined (NaN) and
    # skipped by the percentile interval instead of crashing (cf. fairlearn #1441).
    est = stats.estimate_rate(_sums([3, 2], [0, 10]), StatsConfig(n_boot=400))
    assert est.draws is not None and np.isnan(est.draws).any()
    assert est.interval(0.95) is not None


def test_permutation_pvalue_separates_real_gaps_from_noise() -> None:
    rng = np.random.default_rng(0)
    same_a = _sums(rng.integers(5, 9, 15), [50] * 15)
    same_b = _sums(rng.integers(5, 9, 15), [50] * 15)
    far_b = _sums(rng.integers(20, 25, 15), [50] * 15)
    p_same = stats.permutation_pvalue(same_a, same_b, 2000, np.random.default_rng(1))
    p_far = stats.permutation_pvalue(same_a, far_b, 2000, np.random.default_rng(1))
    assert p_same is not None and p_same > 0.05
    assert p_far is not None and p_far < 0.001
    assert p_far >= 1 / 2001  # never exactly 0


def test_holm_matches_hand_computation() -> None:
    # sorted 0.01, 0.02, 0.04 -> 0.03, 0.04, 0.04 (monotone), None stays None
    assert stats.holm([0.04, 0.01, None, 0.02]) == pytest.approx([0.04, 0.03, None, 0.04])
    assert stats.holm([0.9, 0.8]) == [1.0, 1.0]


def test_gap_difference_and_ratio_intervals() -> None:
    cfg = StatsConfig(n_boot=1000)
    a = stats.estimate_rate(_sums([20, 25, 30, 22], [100] * 4), cfg, "g", "a")
    b = stats.estimate_rate(_sums([10, 12, 9, 11], [100] * 4), cfg, "g", "b")
    gap = stats.gap(a, b, 0.95)
    assert gap.diff == pytest.approx(0.2425 - 0.105)
    assert gap.ratio == pytest.approx(0.2425 / 0.105)
    assert gap.diff_ci is not None and gap.diff_ci[0] > 0
    assert gap.ratio_ci is not None and gap.ratio_ci[0] > 1


def test_paired_bootstrap_detects_a_consistent_improvement() -> None:
    rng = np.random.default_rng(2)
    errors_a = rng.integers(10, 40, 30).astype(float)
    errors_b = errors_a - 2  # B is better on every speaker, by a little
    sums = np.column_stack([errors_a, errors_b, np.full(30, 100.0)])
    result = stats.paired(sums, StatsConfig(n_boot=1000), "wer")
    assert result.diff == pytest.approx(-0.02)
    assert result.diff_ci is not None and result.diff_ci[1] < 0
    assert result.p_b_better == 1.0


def test_paired_bootstrap_of_identical_systems_is_centred_on_zero() -> None:
    sums = np.column_stack([np.arange(1, 11), np.arange(1, 11), np.full(10, 20)]).astype(float)
    result = stats.paired(sums, StatsConfig(n_boot=200), "wer")
    assert result.diff == 0.0
    assert result.diff_ci == (0.0, 0.0)
    assert result.p_b_better == 0.0
