"""The ablation's statistics against independent recomputations: the t statistics,
intervals and p-values written out from their textbook formulas with scipy's t
distribution, and the detectable difference against a Monte Carlo estimate of power."""
import math

import numpy as np
import pytest
from scipy import stats

from odenets.app.commands.statistics import BETTER, NONE, WORSE, compare, detectable

# a known input: per-seed test accuracies (%) of two rows over the same five seeds
BASE = {0: 97.11, 1: 97.78, 2: 96.89, 3: 97.56, 4: 97.33}


def paired_by_hand(row, base):
    d = np.array([row[s] - base[s] for s in sorted(base)])
    n, mean, sd = len(d), d.mean(), d.std(ddof=1)
    se = sd / math.sqrt(n)
    half = stats.t.ppf(0.975, n - 1) * se
    return mean, mean - half, mean + half, 2 * stats.t.sf(abs(mean / se), n - 1)


def welch_by_hand(a, b):
    a, b = np.array(list(a.values())), np.array(list(b.values()))
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    mean = a.mean() - b.mean()
    half = stats.t.ppf(0.975, df) * se
    return mean, mean - half, mean + half, 2 * stats.t.sf(abs(mean / se), df), se, df


def test_a_real_difference_is_detected_paired_by_seed():
    # each seed gains between 0.4 and 0.9 points: small against the seed-to-seed spread
    # of the baseline (0.35), large against that of the differences
    row = {s: BASE[s] + g for s, g in zip(BASE, (0.67, 0.44, 0.89, 0.45, 0.66))}
    c = compare(row, BASE)
    mean, low, high, p = paired_by_hand(row, BASE)
    assert c.paired and c.verdict == BETTER and c.detectable is None
    assert (c.diff_mean, c.ci_low, c.ci_high, c.p_value) == pytest.approx((mean, low, high, p), rel=1e-9)
    assert 0 < c.ci_low and p < 0.01
    # the same numbers under different seeds are no pair: Welch's test, which cannot see it
    welch = compare({s + 10: v for s, v in row.items()}, BASE)
    assert not welch.paired and welch.ci_low < c.ci_low


def test_a_loss_is_worse():
    row = {s: v - 1.2 + 0.1 * (s % 2) for s, v in BASE.items()}
    c = compare(row, BASE)
    assert c.verdict == WORSE and c.ci_high < 0 and c.diff_mean == pytest.approx(-1.16)  # two of five seeds lose 0.1 less


def test_no_difference_welch_with_the_smallest_detectable_one():
    row = {10: 97.56, 11: 96.89, 12: 97.78, 13: 97.11}  # other seeds, the same kind of values
    c = compare(row, BASE)
    mean, low, high, p, se, df = welch_by_hand(row, BASE)
    assert not c.paired and c.verdict == NONE
    assert (c.diff_mean, c.ci_low, c.ci_high, c.p_value) == pytest.approx((mean, low, high, p), rel=1e-9)
    assert c.ci_low < 0 < c.ci_high and p > 0.5
    # detectable: Welch's test on rows of these sizes and spreads, shifted by it, rejects in
    # about 80% of Monte Carlo draws (77% here: the noncentral t with Welch's estimated df
    # is an approximation, a little optimistic for rows of four and five)
    rng = np.random.default_rng(0)
    a = rng.normal(c.detectable, np.std(list(row.values()), ddof=1), size=(20_000, len(row)))
    b = rng.normal(0.0, np.std(list(BASE.values()), ddof=1), size=(20_000, len(BASE)))
    power = np.mean(stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue < 0.05)
    assert power == pytest.approx(0.80, abs=0.05) and c.detectable > 2.80 * se


def test_paired_no_difference():
    row = {s: v + d for (s, v), d in zip(BASE.items(), (0.22, -0.45, 0.0, 0.22, -0.22))}
    c = compare(row, BASE)
    assert c.paired and c.verdict == NONE and c.p_value == pytest.approx(paired_by_hand(row, BASE)[3])
    assert c.detectable > abs(c.diff_mean)


@pytest.mark.parametrize("n", [3, 5, 10])
def test_detectable_difference_has_the_power_claimed(n):
    """Monte Carlo: differences of n paired runs drawn with the true mean detectable(se)
    and sd s are rejected by the two-sided t-test at 5% in 80% of the draws."""
    s = 0.6
    delta = detectable(s / math.sqrt(n), n - 1)
    rng = np.random.default_rng(n)
    d = rng.normal(delta, s, size=(40_000, n))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
    power = np.mean(np.abs(t) > stats.t.ppf(0.975, n - 1))
    assert power == pytest.approx(0.80, abs=0.012)


def test_detectable_tends_to_the_normal_approximation():
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert detectable(0.5, 1e7) == pytest.approx(z * 0.5, rel=1e-4)
    assert detectable(0.5, 4) > detectable(0.5, 40) > z * 0.5
    assert detectable(0.5, 1) > 0  # two seeds: huge, but defined
    assert detectable(0.0, 4) == 0.0


def test_degenerate_rows():
    one = compare({0: 97.0}, {0: 96.0})  # one seed: a difference, no interval
    assert one.diff_mean == 1.0 and one.ci_low is None and one.p_value is None and one.verdict == NONE
    same = compare({0: 97.0, 1: 98.0}, {0: 96.0, 1: 97.0})  # every seed gains exactly one point
    assert same.verdict == BETTER and (same.ci_low, same.ci_high, same.p_value) == (1.0, 1.0, 0.0)
    equal = compare({0: 97.0, 1: 98.0}, {0: 97.0, 1: 98.0})
    assert equal.verdict == NONE and equal.p_value == 1.0 and equal.detectable == 0.0
    with pytest.raises(ValueError, match="at least one result"):
        compare({}, BASE)
    with pytest.raises(ValueError, match="level and power"):
        compare(BASE, BASE, level=95)
