import math
from itertools import combinations

import numpy as np
import pytest
from scipy import stats as sps

from asrfair import stats
from asrfair.errors import AsrfairError
from asrfair.stats import StatsConfig


def _sample(errors: list[float], words: list[float]) -> np.ndarray:
    return stats.moments(np.column_stack([errors, words]).astype(float))


def _draws(sample: np.ndarray, cfg: StatsConfig, *key: str) -> list[np.ndarray]:
    return [stats.SharedDraws(cfg).totals(sample, *key)]


def test_unit_sums_add_utterances_per_speaker() -> None:
    values = np.array([[1, 10], [2, 5], [3, 7]], dtype=float)
    sums = stats.unit_sums(values, np.array(["b", "a", "b"]))
    np.testing.assert_array_equal(sums, [[4, 17], [2, 5]])


def test_resample_totals_matches_a_naive_loop_with_the_same_draws() -> None:
    sums = np.column_stack([[1, 5, 2, 8], [10, 20, 15, 30]]).astype(float)
    fast = stats.resample_totals(sums, 50, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    picks = rng.integers(0, 4, size=(50, 4))
    naive = np.array([sums[row].sum(axis=0) for row in picks])
    np.testing.assert_allclose(fast, naive)


def test_shared_draws_are_the_same_cached_chunked_or_regenerated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sample = _sample(list(range(30)), [10] * 30)
    cfg = StatsConfig(n_boot=200, interval="percentile")
    cached = stats.SharedDraws(cfg)
    whole = cached.totals(sample, "g", "a")
    assert cached.totals(sample[:, :2], "g", "a").shape == (200, 2)  # another metric, same draws
    np.testing.assert_array_equal(cached.totals(sample[:, :2], "g", "a"), whole[:, :2])
    monkeypatch.setattr(stats, "_CACHE_CELLS", 0)  # nothing kept: drawn again, chunk by chunk
    monkeypatch.setattr(stats, "_CHUNK_CELLS", 30 * 7)
    regenerated = stats.SharedDraws(cfg).totals(sample, "g", "a")
    np.testing.assert_array_equal(whole, regenerated)
    other = stats.SharedDraws(cfg).totals(sample, "g", "b")
    assert not np.array_equal(whole, other)  # keyed by group


def test_rate_is_corpus_level_not_mean_of_utterances() -> None:
    est = stats.estimate("rate", [_sample([1, 9], [1, 99])], StatsConfig(n_boot=0))
    assert est.value == pytest.approx(10 / 100)  # the mean of rates would be 0.545
    assert est.ci is None


def test_t_interval_is_the_linearised_cluster_robust_interval() -> None:
    errors, words = np.array([3.0, 1, 4, 1, 5]), np.array([20.0, 10, 30, 15, 25])
    est = stats.estimate("rate", [_sample(list(errors), list(words))], StatsConfig(interval="t"))
    r = errors.sum() / words.sum()
    k = len(errors)
    se = math.sqrt(k / (k - 1) * np.sum((errors - r * words) ** 2)) / words.sum()
    half = sps.t.ppf(0.975, k - 1) * se
    assert est.value == pytest.approx(r)
    assert est.ci == pytest.approx((r - half, r + half))


def test_speakers_with_equal_rates_get_the_token_variance_not_a_zero_width_interval() -> None:
    sample = _sample([5] * 5, [25] * 5)  # five speakers at exactly 20%
    for method in ("auto", "bootstrap-t", "t"):
        cfg = StatsConfig(n_boot=999, interval=method)
        est = stats.estimate("rate", [sample], cfg, _draws(sample, cfg, "eq"))
        p = 25.5 / 126  # 25 errors in 125 words, half an error added so p is never 0
        half = sps.t.ppf(0.975, 4) * math.sqrt(p * (1 - p) / 125)
        assert est.ci == pytest.approx((0.2 - half, 0.2 + half)), method
        if method != "t":  # the switch from bootstrap-t is said
            assert est.reason is not None and "equal rates" in est.reason


def test_speakers_with_equal_rates_do_not_make_bootstrap_t_unbounded() -> None:
    # Seven speakers with 1 error in 25 words and one with 2: a third of the draws hold only
    # equal-rate speakers, whose cluster SE is 0. The binomial floor keeps t* finite.
    sample = _sample([1] * 7 + [2], [25] * 8)
    cfg = StatsConfig(n_boot=2000, interval="bootstrap-t")
    est = stats.estimate("rate", [sample], cfg, _draws(sample, cfg, "m"))
    assert est.ci is not None and est.ci[0] is not None and est.ci[1] is not None
    assert 0.02 < est.ci[0] < est.value < est.ci[1] < 0.1  # type: ignore[operator]


def test_every_interval_method_is_seeded_and_brackets_the_estimate() -> None:
    sample = _sample([3, 1, 4, 1, 5, 9, 2, 6], [20] * 8)
    for method in stats.INTERVALS:
        cfg = StatsConfig(n_boot=2000, seed=3, interval=method)
        first = stats.estimate("rate", [sample], cfg, _draws(sample, cfg, "g", "x"))
        again = stats.estimate("rate", [sample], cfg, _draws(sample, cfg, "g", "x"))
        assert first == again, method
        assert first.ci is not None and first.ci[1] is not None
        assert first.ci[0] < first.value < first.ci[1], method  # type: ignore[operator]


def test_cluster_interval_is_wider_than_utterance_interval_for_correlated_speakers() -> None:
    # Two kinds of speaker: all their utterances good, or all bad. Resampling utterances
    # ignores that correlation and understates the uncertainty.
    rng = np.random.default_rng(0)
    speakers = np.repeat(np.arange(20), 25)
    bad = (speakers % 2 == 0).astype(float)
    errors = bad * rng.integers(3, 6, size=speakers.size) + (1 - bad) * rng.integers(0, 2, 500)
    values = np.column_stack([errors, np.full(speakers.size, 10.0)])
    for method in ("t", "percentile"):
        cfg = StatsConfig(n_boot=2000, interval=method)
        widths = []
        for units in (speakers, np.arange(500)):
            sample = stats.moments(stats.unit_sums(values, units))
            ci = stats.estimate("rate", [sample], cfg, _draws(sample, cfg, "x")).ci
            assert ci is not None and ci[1] is not None
            widths.append(ci[1] - ci[0])
        assert widths[0] > 2 * widths[1], method


def test_undefined_rate_has_no_interval_and_no_division_by_zero() -> None:
    est = stats.estimate("rate", [_sample([8, 0], [0, 0])], StatsConfig(n_boot=200))
    assert est.value is None and est.ci is None
    assert est.reason is not None and "undefined" in est.reason


def test_fewer_than_two_speakers_give_no_interval_with_a_reason() -> None:
    for method in stats.INTERVALS:
        cfg = StatsConfig(n_boot=200, interval=method)
        sample = _sample([4], [40])
        est = stats.estimate("rate", [sample], cfg, _draws(sample, cfg, "one"))
        assert est.value == pytest.approx(0.1)
        assert est.ci is None and est.reason is not None and "fewer than 2" in est.reason


def test_a_group_without_errors_gets_an_upper_bound_not_a_zero_width_interval() -> None:
    est = stats.estimate("rate", [_sample([0, 0, 0], [100, 100, 100])], StatsConfig())
    assert est.value == 0.0 and est.ci is not None
    assert est.ci[0] == 0.0
    assert est.ci[1] == pytest.approx(1 - 0.025 ** (1 / 300))  # Clopper-Pearson, 0 of 300
    assert est.reason is not None and "Clopper-Pearson" in est.reason


def test_undefined_draws_are_counted_not_dropped() -> None:
    # One of three speakers has only empty references: 1/27 of draws hold no tokens at all.
    sample = _sample([3, 2, 1], [0, 10, 10])
    cfg = StatsConfig(n_boot=4000, interval="percentile")
    est = stats.estimate("rate", [sample], cfg, _draws(sample, cfg, "u"))
    assert est.undefined_share == pytest.approx(1 / 27, abs=0.01)
    assert est.reason is not None and "undefined" in est.reason


def test_ratio_interval_is_open_when_the_reference_group_can_have_no_errors() -> None:
    # Group b: 3 speakers, 2 of them error-free; 8/27 of draws give b a rate of 0.
    a = _sample([5, 6, 7, 5], [50] * 4)
    b = _sample([0, 0, 3], [50] * 3)
    for method in ("percentile", "bootstrap-t", "bca"):
        cfg = StatsConfig(n_boot=4000, interval=method)
        draws = [stats.SharedDraws(cfg).totals(a, "a"), stats.SharedDraws(cfg).totals(b, "b")]
        rel = stats.estimate("log-ratio", [a, b], cfg, draws)
        assert rel.value == pytest.approx((23 / 200) / (3 / 150))
        assert rel.ci is not None and rel.ci[1] is None, method  # unbounded above
        assert rel.undefined_share == pytest.approx(8 / 27, abs=0.02)
        assert rel.reason is not None and "unbounded" in rel.reason


def test_draws_of_equal_rate_speakers_do_not_blow_up_bootstrap_t() -> None:
    # One speaker of five makes every error: a third of the draws leave it out, all at 0%.
    sample = _sample([9, 0, 0, 0, 0], [9] * 5)
    cfg = StatsConfig(n_boot=2000, interval="bootstrap-t")
    est = stats.estimate("rate", [sample], cfg, _draws(sample, cfg, "one-bad"))
    assert est.ci is not None and est.ci[1] is not None
    assert est.ci[0] == 0.0 and 0.2 < est.ci[1] < 0.6  # not the 279% of an unguarded t*


def test_each_interval_test_rejects_exactly_when_its_interval_excludes_zero() -> None:
    rng = np.random.default_rng(8)
    for method in stats.INTERVALS:
        cfg = StatsConfig(n_boot=999, interval=method)
        for shift in (0, 1, 2, 3, 4, 6):
            a = _sample(list(rng.integers(5, 12, 8) + shift), [50] * 8)
            b = _sample(list(rng.integers(5, 12, 7)), [50] * 7)
            draws = [stats.resample_totals(a, 999, rng), stats.resample_totals(b, 999, rng)]
            est = stats.estimate("diff", [a, b], cfg, draws)
            assert est.ci is not None and est.ci[1] is not None and est.p_zero is not None
            excludes = est.ci[0] > 0 or est.ci[1] < 0
            # Order statistics make the two agree up to one draw's worth of p.
            if abs(est.p_zero - 0.05) > 2 / 1000:
                assert excludes == (est.p_zero < 0.05), (method, shift, est)


def test_permutation_test_separates_real_gaps_from_noise() -> None:
    rng = np.random.default_rng(0)
    same_a = _sample(list(rng.integers(5, 9, 15)), [50] * 15)
    same_b = _sample(list(rng.integers(5, 9, 15)), [50] * 15)
    far_b = _sample(list(rng.integers(20, 25, 15)), [50] * 15)
    p_same = stats.permutation_test(same_a, same_b, 2000, np.random.default_rng(1))
    p_far = stats.permutation_test(same_a, far_b, 2000, np.random.default_rng(1))
    assert not p_same.exact and p_same.relabelings == 2000
    assert p_same.p_values[0] is not None and p_same.p_values[0] > 0.05
    assert p_far.p_values[0] is not None and p_far.p_values[0] < 0.001
    assert p_far.p_values[0] >= 1 / 2001  # never exactly 0
    assert p_far.p_min == [pytest.approx(1 / 2001)]


def test_few_relabelings_are_enumerated_exactly() -> None:
    a = _sample([9, 8, 10], [50] * 3)
    b = _sample([1, 2, 0], [50] * 3)
    test = stats.permutation_test(a, b, 10_000, np.random.default_rng(0))
    assert test.exact and test.relabelings == 20
    # The observed split is the most extreme, and so is its mirror: p = 2/20, and no
    # 3-vs-3 comparison can ever go below it.
    assert test.p_values == [pytest.approx(0.1)] and test.p_min == [pytest.approx(0.1)]


def test_exact_p_value_equals_brute_force_over_all_relabelings() -> None:
    rng = np.random.default_rng(5)
    errors = rng.integers(0, 12, 9).astype(float)
    words = rng.integers(20, 60, 9).astype(float)
    pooled = _sample(list(errors), list(words))
    test = stats.permutation_test(pooled[:4], pooled[4:], 1000, np.random.default_rng(0))
    observed = abs(stats.studentised(pooled[:4].sum(0), 4, pooled[4:].sum(0), 5)[0])
    count = 0
    for combo in combinations(range(9), 4):
        mask = np.isin(np.arange(9), combo)
        t = stats.studentised(pooled[mask].sum(0), 4, pooled[~mask].sum(0), 5)[0]
        count += abs(t) >= observed - 1e-9
    assert test.exact and test.p_values[0] == pytest.approx(count / 126)


def test_random_subsets_are_uniform() -> None:
    picks = stats._random_subsets(5, 2, 40_000, np.random.default_rng(0))
    assert np.all(picks[:, 0] != picks[:, 1])
    keys, counts = np.unique(np.sort(picks, axis=1), axis=0, return_counts=True)
    assert len(keys) == 10  # every 2-subset of 5
    expected = 40_000 / 10
    assert np.all(np.abs(counts - expected) < 5 * math.sqrt(expected))


def test_simultaneous_range_covers_the_choice_of_worst_and_best() -> None:
    samples = {g: _sample([5 + i, 6 + i, 4 + i, 5 + i], [50] * 4) for i, g in enumerate("abcd")}
    worst, best, diff, ci = stats.simultaneous_range(samples, StatsConfig())  # type: ignore[misc]
    assert (worst, best) == ("d", "a") and diff == pytest.approx(0.06)
    assert ci is not None and ci[0] <= diff <= ci[1]
    pair = stats.estimate("diff", [samples["d"], samples["a"]], StatsConfig(interval="t"))
    assert pair.ci is not None and pair.ci[1] is not None
    assert ci[1] - ci[0] > pair.ci[1] - pair.ci[0]


def test_holm_matches_hand_computation() -> None:
    # sorted 0.01, 0.02, 0.04 -> 0.03, 0.04, 0.04 (monotone), None stays None
    assert stats.holm([0.04, 0.01, None, 0.02]) == pytest.approx([0.04, 0.03, None, 0.04])
    assert stats.holm([0.9, 0.8]) == [1.0, 1.0]


def test_gap_difference_and_ratio_intervals() -> None:
    a = _sample([20, 25, 30, 22], [100] * 4)
    b = _sample([10, 12, 9, 11], [100] * 4)
    linear = StatsConfig(interval="t")
    diff = stats.estimate("diff", [a, b], linear)
    rel = stats.estimate("log-ratio", [a, b], linear)
    assert diff.value == pytest.approx(0.2425 - 0.105)
    assert rel.value == pytest.approx(0.2425 / 0.105)
    assert diff.ci is not None and diff.ci[0] > 0
    assert rel.ci is not None and rel.ci[0] > 1 and rel.ci[1] is not None


def test_config_refuses_what_it_cannot_do() -> None:
    with pytest.raises(AsrfairError, match="--bootstrap 5000000"):
        StatsConfig(n_boot=5_000_000)
    with pytest.raises(AsrfairError, match=r"--interval 'wald'.*t, percentile, bca"):
        StatsConfig(interval="wald")
    with pytest.raises(AsrfairError, match="--gaps 'ref:'"):
        StatsConfig(gaps="ref:")
    with pytest.raises(AsrfairError, match="--p-adjust"):
        StatsConfig(p_adjust="bonferroni")


def test_paired_bootstrap_detects_a_consistent_improvement() -> None:
    rng = np.random.default_rng(2)
    errors_a = rng.integers(10, 40, 30).astype(float)
    errors_b = errors_a - 2  # B is better on every speaker, by a little
    sums = np.column_stack([errors_a, errors_b, np.full(30, 100.0)])
    result = stats.paired(sums, StatsConfig(n_boot=1000), "wer")
    assert result.diff == pytest.approx(-0.02)
    assert result.diff_ci is not None and result.diff_ci[1] < 0
    assert (result.p_b_better, result.p_a_better, result.p_tie) == (1.0, 0.0, 0.0)


def test_paired_bootstrap_of_identical_systems_is_a_tie() -> None:
    sums = np.column_stack([np.arange(1, 11), np.arange(1, 11), np.full(10, 20)]).astype(float)
    result = stats.paired(sums, StatsConfig(n_boot=200), "wer")
    assert result.diff == 0.0
    assert result.diff_ci == (0.0, 0.0)
    assert (result.p_b_better, result.p_a_better, result.p_tie) == (0.0, 0.0, 1.0)
