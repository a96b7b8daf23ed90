"""Distribution shift between a reference and a live window of counts.

PSI (population stability index) is the gate: it measures how far the shares
moved, whatever the sample size. The chi-square test is reported beside it: with
thousands of live predictions it flags even harmless shifts, so it informs a
human rather than failing a job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

EPS = 1e-4  # share given to an empty bin, so one empty bin does not make PSI infinite


def shares(counts: Sequence[float]) -> list[float]:
    """Counts to proportions, empty bins floored at EPS and renormalised."""
    total = float(sum(counts))
    if total <= 0:
        raise ValueError("no observations")
    floored = [max(c / total, EPS) for c in counts]
    norm = sum(floored)
    return [f / norm for f in floored]


def psi_terms(reference: Sequence[float], live: Sequence[float]) -> list[float]:
    """Each bin's contribution (q - p) * ln(q / p); their sum is the PSI."""
    p, q = shares(reference), shares(live)
    return [(qi - pi) * math.log(qi / pi) for pi, qi in zip(p, q, strict=True)]


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for chi-square with `df` degrees of freedom (regularised upper gamma).

    Series expansion of the lower gamma function; far in the tail it is 0 to
    double precision, which is returned without iterating.
    """
    if x <= 0:
        return 1.0
    a, z = df / 2.0, x / 2.0
    if z > a + 40.0 * math.sqrt(a) + 100.0:
        return 0.0
    term = total = 1.0 / a
    n = 1
    while term > total * 1e-15:
        term *= z / (a + n)
        total += term
        n += 1
    lower = total * math.exp(a * math.log(z) - z - math.lgamma(a))
    return max(0.0, 1.0 - lower)


@dataclass(frozen=True)
class ChiSquare:
    statistic: float
    df: int
    p_value: float


def chi_square(reference: Sequence[float], live: Sequence[float]) -> ChiSquare:
    """Goodness of fit of the live counts to the reference shares."""
    n = float(sum(live))
    if n <= 0:
        raise ValueError("no live observations")
    expected = [n * p for p in shares(reference)]
    stat = sum((o - e) ** 2 / e for o, e in zip(live, expected, strict=True))
    df = len(expected) - 1
    return ChiSquare(stat, df, chi2_sf(stat, df))
