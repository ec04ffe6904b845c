"""Is a row of an ablation better than its baseline? A t-test on per-seed results.

Each row is a set of runs that differ only in their seed, compared with a baseline
row: the difference of the means with its confidence interval and a two-sided p-value,
from a paired t-test when both rows ran the same seeds (a seed fixes the data order,
so the pair shares it) and from Welch's t-test otherwise. When the test finds nothing,
:func:`detectable` says how large a difference these seeds would have found with 80%
power, so that "no difference" can be read as "none this large". scipy is imported
inside the functions: importing this module stays cheap.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Mapping, Optional

BETTER, WORSE, NONE = "better", "worse", "no difference detectable"


@dataclass(frozen=True)
class Comparison:
    """A row against its baseline, in the units of the values (e.g. accuracy points).

    ``ci_low``, ``ci_high``, ``p_value`` and ``detectable`` are None where one seed
    per row leaves the spread unknown; ``detectable`` is set only for the verdict
    ``no difference detectable``."""

    diff_mean: float
    ci_low: Optional[float]
    ci_high: Optional[float]
    p_value: Optional[float]
    paired: bool
    verdict: str
    detectable: Optional[float]

    def as_dict(self) -> dict:
        """The fields by name, as the ablation's table and ablation.json record them."""
        return asdict(self)


def compare(row: Mapping[int, float], baseline: Mapping[int, float], level: float = 0.95,
            power: float = 0.8) -> Comparison:
    """``row`` against ``baseline``, each a mapping seed -> result (higher is better).

    Paired by seed when both ran the same seeds (at least two), else Welch's unequal-
    variance t-test. The verdict is ``better`` or ``worse`` when the two-sided p-value
    is below 1 - ``level`` (the interval then excludes 0), else ``no difference
    detectable``, with the smallest difference detectable at ``power``."""
    if not row or not baseline:
        raise ValueError("compare needs at least one result in each row")
    if not 0 < level < 1 or not 0 < power < 1:
        raise ValueError(f"level and power must lie in (0, 1), got {level} and {power}")
    paired = set(row) == set(baseline) and len(row) > 1
    if paired:
        seeds = sorted(row)
        a, b = [row[s] for s in seeds], [baseline[s] for s in seeds]
    else:
        a, b = list(row.values()), list(baseline.values())
    diff = statistics.fmean(a) - statistics.fmean(b)
    se, df = _standard_error(a, b, paired)
    if se is None:  # one run in a row: no spread to test against
        return Comparison(diff, None, None, None, paired, NONE, None)
    if se == 0:  # every run gave the same result: the limit of the test as the spread vanishes
        p = 1.0 if diff == 0 else 0.0
        low = high = diff
    else:
        from scipy import stats

        test = stats.ttest_rel(a, b) if paired else stats.ttest_ind(a, b, equal_var=False)
        p = float(test.pvalue)
        ci = test.confidence_interval(level)
        low, high = float(ci.low), float(ci.high)
    if p < 1 - level:
        return Comparison(diff, low, high, p, paired, BETTER if diff > 0 else WORSE, None)
    return Comparison(diff, low, high, p, paired, NONE, detectable(se, df, 1 - level, power))


def _standard_error(a: list[float], b: list[float], paired: bool) -> tuple[Optional[float], Optional[float]]:
    """The standard error of the difference of the means and its degrees of freedom
    (Welch–Satterthwaite when unpaired); (None, None) when a row has one run."""
    if paired:
        d = [x - y for x, y in zip(a, b)]
        return statistics.stdev(d) / math.sqrt(len(d)), len(d) - 1
    if len(a) < 2 or len(b) < 2:
        return None, None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return 0.0, len(a) + len(b) - 2
    return math.sqrt(va + vb), (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))


def detectable(se: float, df: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true difference a two-sided t-test at level ``alpha`` with standard
    error ``se`` and ``df`` degrees of freedom rejects with probability ``power``.

    The test statistic under a true difference delta follows the noncentral t
    distribution with noncentrality delta / se, exactly for the paired test and
    approximately for Welch's (whose df is itself estimated: with four and five runs a
    row the power is a few points below the nominal one); the spread is taken to be
    the observed one. For many seeds this tends to (z_{1-alpha/2} + z_power) se, the
    normal approximation (2.80 se at the defaults)."""
    from scipy import optimize, stats

    if se == 0:
        return 0.0
    crit = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(nc: float) -> float:
        lower = stats.nct.cdf(-crit, df, nc)  # below alpha / 2; scipy gives NaN where it underflows
        return stats.nct.sf(crit, df, nc) + (0.0 if math.isnan(lower) else lower) - power

    high = 10.0
    while shortfall(high) < 0:
        high *= 2
    return float(optimize.brentq(shortfall, 0.0, high)) * se
