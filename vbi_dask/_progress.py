"""A minimal text progress bar for the budget driver (no dependency)."""

from __future__ import annotations

import sys
import time


class BlockProgress:
    """``[#####     ]  12/40 blocks  3.2 sims/s`` on one line of ``stream``, redrawn at
    most every ``min_interval_s`` seconds (and on completion)."""

    def __init__(self, total: int, *, enabled: bool = True, stream=None, width: int = 30,
                 min_interval_s: float = 0.5):
        self.total, self.enabled, self.width = total, enabled and total > 0, width
        self.stream = stream or sys.stderr
        self.min_interval_s = min_interval_s
        self.done = self.sims = 0
        self.start = self._last = time.perf_counter()
        self._drawn = -1

    def update(self, blocks: int = 1, sims: int = 0) -> None:
        self.done += blocks
        self.sims += sims
        now = time.perf_counter()
        if self.enabled and (now - self._last >= self.min_interval_s or self.done >= self.total):
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        self._drawn = self.done
        filled = int(self.width * self.done / self.total)
        rate = self.sims / max(now - self.start, 1e-9)
        self.stream.write(f"\r[{'#' * filled}{' ' * (self.width - filled)}] {self.done:>{len(str(self.total))}}/"
                          f"{self.total} blocks  {rate:.3g} sims/s  {now - self.start:.1f} s")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            if self._drawn != self.done:
                self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()
