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
    assert not rate.flaky  # the observed rate meets 80%: a pass, however wide the interval
    assert pass_rate(4, 5, required=0.8).met  # no float rounding below the requirement
    assert not pass_rate(0, 0).met and pass_rate(0, 0).rate is None
    with pytest.raises(ValueError):
        pass_rate(1, 1, required=0)


@pytest.mark.parametrize(
    ("passed", "total", "required", "flaky", "met"),
    [
        (3, 3, 1.0, False, True),  # met: a pass, even though 3 runs prove little
        (10, 10, 0.8, False, True),  # met
        (8, 10, 0.8, False, True),  # met exactly: a pass, although the interval [49%, 94%] straddles 0.8
        (0, 3, 1.0, False, False),  # interval [0%, 56%] below 100%: fail
        (2, 3, 1.0, False, False),  # interval [21%, 94%] below 100%: fail (any failure at the default 100% is)
        (2, 4, 1.0, False, False),  # interval [15%, 85%] lies wholly below 100%: fail, not flaky
        (9, 10, 1.0, False, False),  # interval [60%, 98%]: one failure in ten still fails a required 100%
        (7, 10, 0.8, True, False),  # missed, but the interval [40%, 89%] contains 0.8: flaky
        (1, 3, 0.5, True, False),  # missed, interval [6%, 79%] contains 0.5: flaky
        (2, 10, 0.8, False, False),  # interval [6%, 51%] lies below 0.8: fail, not flaky
        (19, 20, 0.5, False, True),  # interval [76%, 99%] lies above 0.5: solidly passing
        (0, 0, 1.0, False, False),  # nothing ran: not met, and not flaky either
    ],
)
def test_pass_when_met_flaky_when_the_interval_still_contains_the_required_rate(
    passed: int, total: int, required: float, flaky: bool, met: bool
) -> None:
    rate = pass_rate(passed, total, required)
    assert (rate.flaky, rate.met) == (flaky, met)


def test_is_flaky_only_when_missed_and_the_interval_contains_the_rate() -> None:
    assert is_flaky(False, 3, 0.5, 0.06, 0.79)
    assert not is_flaky(True, 10, 0.8, 0.49, 0.94)  # met: a pass, never flaky
    assert not is_flaky(False, 4, 1.0, 0.15, 0.85)  # the interval lies below: a fail
    assert not is_flaky(False, 0, 0.5, 0.0, 1.0)  # nothing ran
