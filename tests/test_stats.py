"""pclup.stats: t quantiles, paired t interval, Wilcoxon signed-rank p-values, bootstrap over seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pclup import stats
from pclup.stats import bootstrap_ci, paired_summary, signed_rank_p, t_cdf, t_interval, t_quantile

TABLE = [(2, 4.3027), (4, 2.7764), (9, 2.2622), (30, 2.0423), (99, 1.9842)]


@pytest.mark.parametrize(("df", "expected"), TABLE)
def test_t_quantile_matches_tables(df: int, expected: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-4)


def test_t_cdf_inverts_quantile_and_approaches_normal() -> None:
    for df in (1, 3, 17):
        for p in (0.6, 0.9, 0.995):
            assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-9)
    assert t_quantile(0.975, 1e6) == pytest.approx(1.959964, abs=1e-4)
    assert t_quantile(0.75, 1) == pytest.approx(1.0, abs=1e-9)  # Cauchy: tan(pi/4)


def test_t_interval_textbook_value() -> None:
    d = np.array([0.1, 0.3, 0.2, 0.4, 0.5])  # mean 0.3, sd sqrt(0.025)
    mean, lo, hi = t_interval(d)
    half = 2.7764451 * math.sqrt(0.025) / math.sqrt(5)
    assert mean == pytest.approx(0.3)
    assert lo == pytest.approx(0.3 - half, abs=1e-6) and hi == pytest.approx(0.3 + half, abs=1e-6)
    assert lo < 0.3 < hi


def test_signed_rank_exact_all_positive_and_symmetric() -> None:
    assert signed_rank_p(np.arange(1, 11) * 0.1) == (pytest.approx(2 / 2**10), "exact")
    assert signed_rank_p(-np.arange(1, 11) * 0.1) == (pytest.approx(0.001953125), "exact")
    assert signed_rank_p(np.array([0.1, 0.2, -0.3])) == (1.0, "exact")  # W+ = 3 = n(n+1)/4
    assert signed_rank_p(np.array([1.0, -2.0, -3.0, 4.0, 5.0, -6.0, -7.0, 8.0])) == (1.0, "exact")  # W+=18


def test_signed_rank_exact_small_table_value() -> None:
    # n = 6, W+ = 2 (ranks 2 positive): P(W <= 2) = 3/64 (sums 0, 1, 2), so p = 6/64.
    p, method = signed_rank_p(np.array([-1.0, 2.0, -3.0, -4.0, -5.0, -6.0]))
    assert method == "exact" and p == pytest.approx(6 / 64)


def test_signed_rank_zeros_dropped_and_ties_use_normal() -> None:
    assert signed_rank_p(np.zeros(4)) == (1.0, "exact")
    assert signed_rank_p(np.array([0.0, 1.0, 2.0, 3.0]))[0] == pytest.approx(0.25)  # n = 3 all positive
    p, method = signed_rank_p(np.array([1.0, 1.0, -1.0, 2.0, 2.0, 3.0, 4.0]))
    assert method == "normal" and 0.0 < p < 1.0
    p, method = signed_rank_p(np.array([-1.0, 1.0, -2.0, 2.0]))  # symmetric with ties
    assert (p, method) == (1.0, "normal")


def test_normal_approximation_agrees_with_exact_at_25(monkeypatch: pytest.MonkeyPatch) -> None:
    d = np.random.default_rng(1).normal(0.3, 1.0, 25)
    exact, method = signed_rank_p(d)
    assert method == "exact"
    monkeypatch.setattr(stats, "EXACT_MAX_N", 0)
    approx, method = signed_rank_p(d)
    assert method == "normal" and abs(approx - exact) < 0.01
    assert signed_rank_p(np.random.default_rng(2).normal(0.0, 1.0, 26))[1] == "normal"


def test_bootstrap_two_seeds_contains_mean_and_is_reproducible() -> None:
    rng = np.random.default_rng(0)
    images = 30.0 + rng.normal(0, 2, 12)  # image difficulty dominates; seeds differ a little
    base = images + rng.normal(0, 0.05, (2, 12))
    other = images + 0.2 + rng.normal(0, 0.05, (2, 12))
    lo, hi = bootstrap_ci(base, other, draws=2000, seed=7)
    mean = float(other.mean() - base.mean())
    assert lo < mean < hi and hi - lo < 0.5
    assert bootstrap_ci(base, other, draws=2000, seed=7) == (lo, hi)
    assert bootstrap_ci(base, other, draws=2000, seed=8) != (lo, hi)


def test_paired_summary() -> None:
    base = np.array([30.0, 31.0, 32.0, 29.0, 28.0, 33.0])
    other = base + np.array([0.1, 0.2, 0.3, 0.15, 0.25, 0.05])
    s = paired_summary(base, other)
    assert s.n == 6 and s.mean_diff == pytest.approx(0.175)
    assert s.t_low < 0.175 < s.t_high and s.p_method == "exact" and s.p_value == pytest.approx(2 / 64)
    assert s.boot_low is None
    s2 = paired_summary(np.stack([base, base + 0.01]), np.stack([other, other - 0.01]), draws=500)
    assert s2.boot_low is not None and s2.boot_high is not None and s2.boot_low < s2.mean_diff < s2.boot_high
