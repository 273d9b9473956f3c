"""How fast things may go: a run's calls (`--rate`, `?rate=`, in calls per minute) and the sandbox's simulated time."""

from __future__ import annotations

import math

# One call every 100 minutes at the slowest; 100 calls a second at the fastest (far beyond any line's capacity,
# so only nonsense is refused: zero, negative, infinite or not a number).
MIN_RATE_PER_MIN = 0.01
MAX_RATE_PER_MIN = 6000.0


def rate_problem(per_min: float) -> str | None:
    """Why `per_min` is not a usable rate, in words; None when it is."""
    if math.isnan(per_min) or not MIN_RATE_PER_MIN <= per_min <= MAX_RATE_PER_MIN:
        return f"the rate must be between {MIN_RATE_PER_MIN:g} and {MAX_RATE_PER_MIN:g} calls per minute"
    return None


# Real seconds per simulated second in the sandbox (CALLCHECK_SANDBOX_TIME_SCALE, `--time-scale`): above this a
# simulated call of minutes would take hours, a unit slip rather than a wish.
MAX_SANDBOX_TIME_SCALE = 100.0
