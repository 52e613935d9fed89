"""The publisher's sending rate: the limit it keeps (:class:`TokenBucket`) and the rate it
reports on the status topic (:class:`RateMeter`). Times are passed in, so both are plain
arithmetic, testable without a clock."""
from __future__ import annotations


class TokenBucket:
    """``publish.rate_limit_bytes_per_s``: ``rate`` bytes per second on average, in bursts of at
    most one second's worth (or one chunk, when a chunk is bigger). A rate of 0 or less: no limit."""

    def __init__(self, rate: int, now: float):
        self.rate = rate
        self.tokens = 0.0
        self.time = now

    def take(self, size: int, now: float) -> float:
        """Take ``size`` bytes' worth: 0.0 when taken, else the seconds until there will be enough."""
        if self.rate <= 0:
            return 0.0
        burst = max(self.rate, size)
        self.tokens = min(burst, self.tokens + (now - self.time) * self.rate)
        self.time = now
        if self.tokens >= size:
            self.tokens -= size
            return 0.0
        return (size - self.tokens) / self.rate


class RateMeter:
    """Bytes sent over the last minute. The sending thread records (and trims); the status
    thread only reads a copy."""

    KEEP_S = 60.0

    def __init__(self):
        self._window: list[tuple[float, int]] = []

    def record(self, size: int, now: float) -> None:
        self._window.append((now, size))
        while self._window and now - self._window[0][0] > self.KEEP_S:
            self._window.pop(0)

    def bytes_per_s(self, now: float, window_s: float = 10.0) -> float:
        """Mean rate over the last ``window_s`` seconds."""
        return sum(n for t, n in list(self._window) if now - t <= window_s) / window_s
