"""How fast a run may place calls: the bounds of `--rate` and `?rate=`, in calls per minute."""

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
