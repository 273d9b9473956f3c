"""Call budgets: how many calls may be placed per number, per minute and per day (pure; counted by the store).

Each budget is a rolling window over the calls table (every call recorded counts, whatever became of it: an attempt
is what costs and what harasses). A budget of 0 is no limit. A call over budget is never recorded, so a refused
request leaves nothing behind, and the budget frees up as the oldest calls in its window age out of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

MINUTE = timedelta(seconds=60)
DAY = timedelta(hours=24)


@dataclass(frozen=True)
class Window:
    """One budget: at most `limit` calls in any `span` (to one number when `per_number`), named by its setting."""

    setting: str
    limit: int
    span: timedelta
    per_number: bool
    description: str

    def refusal(self, resets_at: datetime, now: datetime) -> str:
        """The sentence of a 429 for this budget."""
        wait = max(1, int((resets_at - now).total_seconds() + 0.999))
        return (
            f"Call limit reached: {self.setting} allows {self.limit} {self.description}. "
            f"It resets at {resets_at.isoformat(timespec='seconds')} (in {wait} s)."
        )


@dataclass(frozen=True)
class CallLimits:
    """The budgets of one callcheck (settings CALLCHECK_MAX_CALLS_*; 0 is no limit)."""

    per_number_per_day: int = 0
    per_minute: int = 0
    per_day: int = 0
    # Calls not final yet, every process and every run together (CALLCHECK_MAX_CONCURRENT_CALLS; 0: no limit).
    concurrent: int = 0

    def windows(self) -> list[Window]:
        """The budgets that apply (non-zero), the shortest first: the one a client can wait out is named first."""
        candidates = [
            Window("CALLCHECK_MAX_CALLS_PER_MINUTE", self.per_minute, MINUTE, False, "calls in any 60 seconds"),
            Window(
                "CALLCHECK_MAX_CALLS_PER_NUMBER_PER_DAY",
                self.per_number_per_day,
                DAY,
                True,
                "calls to one number in any 24 hours",
            ),
            Window("CALLCHECK_MAX_CALLS_PER_DAY", self.per_day, DAY, False, "calls in any 24 hours"),
        ]
        return [w for w in candidates if w.limit > 0]


def concurrent_refusal(limit: int) -> str:
    """The sentence of a 429 when CALLCHECK_MAX_CONCURRENT_CALLS calls are already under way."""
    return (
        f"Call limit reached: CALLCHECK_MAX_CONCURRENT_CALLS allows {limit} calls in progress at once. "
        "Try again when one of them has ended."
    )
