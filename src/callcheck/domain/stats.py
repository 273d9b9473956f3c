"""Pass rates of repeated scenarios: the observed rate, its 95% Wilson score interval, and flakiness.

Why Wilson: with the handful of runs a phone test affords (3, 5, 10), the normal approximation gives intervals
that leave [0, 1] or collapse to a point at 0/n and n/n; Wilson's stays inside and stays honest at the ends.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

# The two-sided 95% quantile of the standard normal distribution.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of `successes` out of `trials` (0 to 1 when there are no trials)."""
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = (z / (1 + z2 / trials)) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    # At 0/n and n/n the bound is exactly 0 or 1; floating point would leave it a hair off.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


class PassRate(BaseModel):
    """How often a scenario passed, with its 95% Wilson interval, against the rate it is required to reach."""

    passed: int
    total: int
    required: float
    rate: float | None  # None when nothing ran
    low: float
    high: float
    met: bool  # the observed rate reaches the required rate
    flaky: bool  # not met, but the interval contains the required rate: the runs do not settle it


def is_flaky(met: bool, total: int, required: float, low: float, high: float) -> bool:
    """True when the observed rate misses `required` but the Wilson interval [low, high] still contains it.

    A scenario that meets its rate passes, however wide its interval; one whose interval lies wholly below the
    rate fails. Only the case in between is flaky. At the default required rate of 1.0 the interval reaches 1.0
    only when every run passed, so there any failure is a plain failure. Nothing run is not flaky either.
    """
    if met or total == 0:
        return False
    return low <= required <= high


def pass_rate(passed: int, total: int, required: float = 1.0) -> PassRate:
    """The pass rate of `passed` out of `total` runs against `required` (0 < required <= 1)."""
    if not 0 < required <= 1:
        raise ValueError(f"required pass rate must be in (0, 1], got {required}")
    low, high = wilson_interval(passed, total)
    rate = passed / total if total else None
    # A tiny tolerance: 4/5 must meet a required 0.8 although 4/5 is 0.8000000000000002 or so in floats.
    met = rate is not None and rate >= required - 1e-9
    return PassRate(
        passed=passed,
        total=total,
        required=required,
        rate=rate,
        low=low,
        high=high,
        met=met,
        flaky=is_flaky(met, total, required, low, high),
    )
