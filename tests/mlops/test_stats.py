import math

import pytest

from mlops.stats import chi2_sf, chi_square, psi_terms, shares


def test_psi_is_zero_for_the_same_shares_at_any_scale() -> None:
    assert sum(psi_terms([10, 30, 60], [100, 300, 600])) == pytest.approx(0.0, abs=1e-12)


def test_psi_matches_the_formula_by_hand() -> None:
    # p = (.5, .5), q = (.25, .75): (-.25) ln .5 + .25 ln 1.5
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert sum(psi_terms([50, 50], [25, 75])) == pytest.approx(expected, rel=1e-3)


def test_an_empty_bin_gives_a_large_but_finite_psi() -> None:
    psi = sum(psi_terms([1, 1, 1], [0, 1, 1]))
    assert 1.0 < psi < 10.0
    assert sum(shares([0, 3])) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("x", "df", "p"),
    [(3.841459, 1, 0.05), (5.991465, 2, 0.05), (9.487729, 4, 0.05), (6.634897, 1, 0.01),
     (2.0, 2, math.exp(-1.0)), (0.0, 3, 1.0), (1e6, 2, 0.0)],
)  # fmt: skip
def test_chi2_survival_matches_tables(x: float, df: int, p: float) -> None:
    assert chi2_sf(x, df) == pytest.approx(p, abs=1e-6)


def test_chi_square_against_reference_shares() -> None:
    # reference shares 1/2, 1/4, 1/4; 100 live: expected 50, 25, 25, observed 40, 30, 30
    result = chi_square([2, 1, 1], [40, 30, 30])
    assert result.statistic == pytest.approx(100 / 50 + 25 / 25 + 25 / 25)
    assert result.df == 2
    assert result.p_value == pytest.approx(math.exp(-2.0), rel=1e-6)
