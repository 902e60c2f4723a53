"""Paired statistics for comparing two models image by image. Pure numpy (and the standard library).

* :func:`t_quantile` -- Student-t quantile, by bisection on the t CDF, which is the regularized
  incomplete beta function evaluated with its continued fraction (modified Lentz). Accurate to ~1e-10.
* :func:`t_interval` -- paired t confidence interval of a mean difference.
* :func:`signed_rank_p` -- two-sided Wilcoxon signed-rank p-value: exact (the null distribution of the
  rank sum enumerated by dynamic programming) for n <= 25 without ties; otherwise the normal
  approximation with tie correction and continuity correction.
* :func:`bootstrap_ci` -- percentile bootstrap over seeds, then images, for arms with several runs.
* :func:`paired_summary` -- all of the above for one pair of arms.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

EXACT_MAX_N = 25


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError("df must be positive")
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (inverse of :func:`t_cdf`, by bisection to 1e-12)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def t_interval(diffs: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the paired t interval of the mean of ``diffs``. n = 1 gives an infinite interval."""
    d = np.asarray(diffs, dtype=np.float64).ravel()
    n = d.size
    if n == 0:
        raise ValueError("no differences")
    mean = float(d.mean())
    if n < 2:
        return mean, -math.inf, math.inf
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * float(d.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size, dtype=np.float64)
    xs = x[order]
    i = 0
    while i < x.size:
        j = i
        while j + 1 < x.size and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def _exact_rank_sum_counts(n: int) -> np.ndarray:
    """counts[w] = number of subsets of {1..n} with sum w (the null distribution of W+, times 2^n)."""
    total = n * (n + 1) // 2
    counts = np.zeros(total + 1, dtype=np.float64)  # float: exact up to 2^53, n <= 25 needs 2^25
    counts[0] = 1.0
    for r in range(1, n + 1):
        counts[r:] = counts[r:] + counts[:-r].copy()
    return counts


def signed_rank_p(diffs: np.ndarray) -> tuple[float, str]:
    """Two-sided Wilcoxon signed-rank p-value of ``diffs`` and the method: ``"exact"`` or ``"normal"``.

    Zero differences are dropped (Wilcoxon's convention); tied |differences| get average ranks.
    Exact for n <= 25 without ties; otherwise the normal approximation with tie-corrected variance and a
    continuity correction of 0.5. No non-zero differences gives p = 1.
    """
    d = np.asarray(diffs, dtype=np.float64).ravel()
    d = d[d != 0.0]
    n = d.size
    if n == 0:
        return 1.0, "exact"
    absd = np.abs(d)
    ranks = _average_ranks(absd)
    w_plus = float(ranks[d > 0].sum())
    ties = np.unique(absd).size < n
    if n <= EXACT_MAX_N and not ties:
        counts = _exact_rank_sum_counts(n)
        w = int(round(w_plus))
        total = counts.sum()
        lower = counts[: w + 1].sum() / total
        upper = counts[w:].sum() / total
        return float(min(1.0, 2.0 * min(lower, upper))), "exact"
    mean = n * (n + 1) / 4.0
    _, tie_sizes = np.unique(absd, return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24.0 - float((tie_sizes**3 - tie_sizes).sum()) / 48.0
    if var <= 0:
        return 1.0, "normal"
    z = max(0.0, abs(w_plus - mean) - 0.5) / math.sqrt(var)
    return float(min(1.0, 2.0 * normal_sf(z))), "normal"


def bootstrap_ci(
    baseline: np.ndarray,
    other: np.ndarray,
    confidence: float = 0.95,
    draws: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(other) - mean(baseline) over seeds and images.

    ``baseline`` is (seeds_a, images), ``other`` is (seeds_b, images), columns paired by image. Each draw
    resamples each arm's seeds with replacement, then the images with replacement (the same images for
    both arms, so that the pairing holds), and takes the difference of the mean PSNRs. A fixed ``seed``
    makes it reproducible.
    """
    a = np.atleast_2d(np.asarray(baseline, dtype=np.float64))
    b = np.atleast_2d(np.asarray(other, dtype=np.float64))
    if a.shape[1] != b.shape[1] or a.shape[1] == 0:
        raise ValueError("baseline and other must have the same, non-zero number of images")
    rng = np.random.default_rng(seed)
    n = a.shape[1]
    stats = np.empty(draws, dtype=np.float64)
    chunk = max(1, 2_000_000 // (n * max(a.shape[0], b.shape[0])))
    for start in range(0, draws, chunk):
        k = min(chunk, draws - start)
        img = rng.integers(0, n, size=(k, n))
        sa = rng.integers(0, a.shape[0], size=(k, a.shape[0]))
        sb = rng.integers(0, b.shape[0], size=(k, b.shape[0]))
        ma = a[:, img].mean(axis=2).T  # (k, seeds_a): each seed's mean over the resampled images
        mb = b[:, img].mean(axis=2).T
        stats[start : start + k] = (np.take_along_axis(mb, sb, axis=1).mean(axis=1)
                                    - np.take_along_axis(ma, sa, axis=1).mean(axis=1))
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


@dataclass
class PairedSummary:
    n: int
    baseline_mean: float
    other_mean: float
    mean_diff: float
    t_low: float
    t_high: float
    p_value: float
    p_method: str  # "exact" or "normal"
    boot_low: float | None = None
    boot_high: float | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def paired_summary(
    baseline: np.ndarray,
    other: np.ndarray,
    confidence: float = 0.95,
    draws: int = 10_000,
    seed: int = 0,
) -> PairedSummary:
    """Compare ``other`` with ``baseline`` image by image.

    Each is (images,) or (seeds, images). The t interval and the signed-rank test use the per-image
    differences of the seed means; with more than one seed in either arm the bootstrap CI is added.
    """
    a = np.atleast_2d(np.asarray(baseline, dtype=np.float64))
    b = np.atleast_2d(np.asarray(other, dtype=np.float64))
    if a.shape[1] != b.shape[1]:
        raise ValueError("baseline and other must have the same number of images")
    d = b.mean(axis=0) - a.mean(axis=0)
    mean, lo, hi = t_interval(d, confidence)
    p, method = signed_rank_p(d)
    summary = PairedSummary(
        n=int(d.size), baseline_mean=float(a.mean()), other_mean=float(b.mean()), mean_diff=mean,
        t_low=lo, t_high=hi, p_value=p, p_method=method,
    )
    if a.shape[0] > 1 or b.shape[0] > 1:
        summary.boot_low, summary.boot_high = bootstrap_ci(a, b, confidence, draws, seed)
    return summary


# --- Reading `pclup bench --json` files and pairing their images -----------------------------------------

DESCRIPTIVE_MAX_N = 5  # a set this small cannot reach p < 0.05 with the signed-rank test: descriptive only


@dataclass
class Arm:
    """One side of a comparison: a label and one or more runs (seeds), each a per-image PSNR table."""

    label: str
    runs: list[dict[tuple[str, int, str], float]]  # (dataset, scale, image) -> PSNR
    sources: list[str]


def read_bench_json(path: str) -> dict[str, dict[tuple[str, int, str], float]]:
    """Per-image PSNRs of a ``pclup bench --json`` file: model -> (dataset, scale, image) -> PSNR."""
    import json

    from .errors import PclupError, UsageError

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PclupError(f"{path}: not a readable JSON file ({e})") from None
    rows = data.get("per_image") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise PclupError(f"{path}: no per_image results (write it with `pclup bench --json`)")
    out: dict[str, dict[tuple[str, int, str], float]] = {}
    try:
        for r in rows:
            key = (str(r["dataset"]), int(r["scale"]), str(r["image"]))
            out.setdefault(str(r["model"]), {})[key] = float(r["psnr"])
    except (KeyError, TypeError, ValueError):
        raise PclupError(f"{path}: per_image rows need model, dataset, scale, image and psnr") from None
    return out


def arms_from_files(paths: list[str], baseline: str | None = None) -> list[Arm]:
    """One arm per (file, model); the baseline (``baseline`` names its model, else the first) comes first."""
    from .errors import UsageError

    arms: list[Arm] = []
    for path in paths:
        for model, table in read_bench_json(path).items():
            arms.append(Arm(model, [table], [path]))
    labels = [a.label for a in arms]
    for arm in arms:
        if labels.count(arm.label) > 1:
            arm.label = f"{arm.sources[0]}:{arm.label}"
    if len(arms) < 2:
        raise UsageError("need two models to compare: give two or more result files, or one holding several")
    return _baseline_first(arms, baseline)


def arms_from_groups(specs: list[str], baseline: str | None = None) -> list[Arm]:
    """Arms from ``NAME=FILE[,FILE...]`` specs; each file (one seed) must hold exactly one model."""
    from .errors import UsageError

    arms: list[Arm] = []
    for spec in specs:
        name, sep, files = spec.partition("=")
        paths = [p for p in files.split(",") if p]
        if not sep or not name or not paths:
            raise UsageError(f"--arm {spec!r}: write NAME=FILE[,FILE...]")
        runs = []
        for path in paths:
            tables = read_bench_json(path)
            if len(tables) != 1:
                raise UsageError(f"--arm {name}: {path} holds {len(tables)} models ({', '.join(tables)}); "
                                 "an arm needs one model per file")
            runs.append(next(iter(tables.values())))
        if name in [a.label for a in arms]:
            raise UsageError(f"--arm {name} given twice")
        arms.append(Arm(name, runs, paths))
    if len(arms) < 2:
        raise UsageError("need two --arm groups to compare")
    return _baseline_first(arms, baseline)


def _baseline_first(arms: list[Arm], baseline: str | None) -> list[Arm]:
    from .errors import UsageError

    if baseline is None:
        return arms
    matches = [a for a in arms if a.label == baseline or a.label.endswith(f":{baseline}")]
    if len(matches) != 1:
        known = ", ".join(a.label for a in arms)
        raise UsageError(f"--baseline {baseline!r} names {'no' if not matches else 'more than one'} model "
                         f"(have: {known})")
    return matches + [a for a in arms if a is not matches[0]]


@dataclass
class CompareRow:
    dataset: str  # a set's name, or "pooled"
    scale: int
    baseline: str
    model: str
    summary: PairedSummary
    descriptive: bool  # too few images for a test to reach significance: read the numbers as description

    def to_json(self) -> dict[str, object]:
        return {"dataset": self.dataset, "scale": self.scale, "baseline": self.baseline, "model": self.model,
                "descriptive": self.descriptive, **self.summary.to_json()}


def _images(run: dict[tuple[str, int, str], float], dataset: str, scale: int) -> set[str]:
    return {img for (d, s, img) in run if d == dataset and s == scale}


def compare_arms(
    arms: list[Arm], confidence: float = 0.95, draws: int = 10_000, seed: int = 0
) -> list[CompareRow]:
    """Every other arm against ``arms[0]``, per set and scale and pooled over the sets of each scale.

    Only the (set, scale) pairs that every run of every arm holds are compared; within one, the image
    names must match exactly (a :class:`UsageError` names the first difference).
    """
    from .errors import UsageError

    runs = [(arm, i, run) for arm in arms for i, run in enumerate(arm.runs)]
    keysets = [{(d, s) for (d, s, _) in run} for _, _, run in runs]
    shared = set.intersection(*keysets)
    first_seen = list(dict.fromkeys((d, s) for (d, s, _) in runs[0][2]))  # the baseline file's order
    common = sorted((k for k in first_seen if k in shared), key=lambda k: k[1])
    if not common:
        raise UsageError("the result files share no (set, scale): nothing to compare")
    for dataset, scale in common:
        ref_arm, ref_i, ref = runs[0]
        ref_names = _images(ref, dataset, scale)
        for arm, i, run in runs[1:]:
            names = _images(run, dataset, scale)
            if names != ref_names:
                odd = sorted(names ^ ref_names)[0]
                where = arm.sources[i] if odd in names else ref_arm.sources[ref_i]
                raise UsageError(f"{dataset} x{scale}: image names differ between {ref_arm.sources[ref_i]} "
                                 f"and {arm.sources[i]} (e.g. {odd!r} only in {where})")

    def matrix(arm: Arm, keys: list[tuple[str, int, str]]) -> np.ndarray:
        return np.array([[run[k] for k in keys] for run in arm.runs], dtype=np.float64)

    rows: list[CompareRow] = []
    base = arms[0]
    for scale in sorted({s for _, s in common}):
        sets = [d for d, s in common if s == scale]
        groups = [(d, sorted(k for k in base.runs[0] if k[0] == d and k[1] == scale)) for d in sets]
        if len(sets) > 1:
            groups.append(("pooled", [k for _, ks in groups for k in ks]))
        for dataset, keys in groups:
            for other in arms[1:]:
                s = paired_summary(matrix(base, keys), matrix(other, keys), confidence, draws, seed)
                rows.append(CompareRow(dataset, scale, base.label, other.label, s, s.n <= DESCRIPTIVE_MAX_N))
    return rows
