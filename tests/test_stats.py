"""Pass rates: the 95% Wilson interval against known values, and when a scenario is flaky."""

from __future__ import annotations

import pytest

from callcheck.domain.stats import is_flaky, pass_rate, wilson_interval


@pytest.mark.parametrize(
    ("passed", "total", "low", "high"),
    [
        # Reference values (Wilson 1927; e.g. R's binom::binom.wilson, statsmodels proportion_confint(method="wilson")).
        (8, 10, 0.490, 0.943),
        (0, 10, 0.000, 0.278),
        (10, 10, 0.722, 1.000),
        (2, 3, 0.208, 0.939),
        (1, 2, 0.095, 0.905),
        (50, 100, 0.404, 0.596),
        (1, 1, 0.207, 1.000),
    ],
)
def test_wilson_interval_known_values(passed: int, total: int, low: float, high: float) -> None:
    got_low, got_high = wilson_interval(passed, total)
    assert got_low == pytest.approx(low, abs=5e-4)
    assert got_high == pytest.approx(high, abs=5e-4)


def test_wilson_interval_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(5, 5)[1] == 1.0
    assert wilson_interval(0, 5)[0] == 0.0
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(-1, 2)


def test_pass_rate_figures() -> None:
    rate = pass_rate(8, 10, required=0.8)
    assert rate.rate == 0.8 and rate.met
    assert (round(rate.low, 3), round(rate.high, 3)) == (0.490, 0.943)
    assert rate.flaky  # 80% observed, but the interval reaches from 49% to 94%
    assert pass_rate(4, 5, required=0.8).met  # no float rounding below the requirement
    assert not pass_rate(0, 0).met and pass_rate(0, 0).rate is None
    with pytest.raises(ValueError):
        pass_rate(1, 1, required=0)


@pytest.mark.parametrize(
    ("passed", "total", "required", "flaky", "met"),
    [
        (3, 3, 1.0, False, True),  # all agree: not flaky, even though 3 runs prove little
        (10, 10, 0.8, False, True),  # all agree
        (0, 3, 1.0, False, False),  # all agree: a plain failure
        (2, 3, 1.0, True, False),  # disagree at the default 100%: flaky (and failing)
        (8, 10, 0.8, True, True),  # straddles 0.8: flaky although met
        (2, 10, 0.8, False, False),  # interval [6%, 51%] lies below 0.8: failing, not flaky
        (19, 20, 0.5, False, True),  # interval [76%, 99%] lies above 0.5: solidly passing
    ],
)
def test_flaky_when_runs_disagree_and_the_interval_straddles(
    passed: int, total: int, required: float, flaky: bool, met: bool
) -> None:
    rate = pass_rate(passed, total, required)
    assert (rate.flaky, rate.met) == (flaky, met)


def test_is_flaky_needs_disagreement() -> None:
    assert not is_flaky(0, 2, 0.5, 0.0, 0.66)
    assert is_flaky(1, 2, 0.5, 0.09, 0.91)
