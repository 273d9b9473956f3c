"""The durable work: place a call, follow it to its end, judge it."""
