"""Real processes in tests: signal one as soon as it reaches a given point."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Callable

__all__ = ["signal_when"]


def signal_when(
    process: subprocess.Popen,
    ready: Callable[[], bool],
    sig: int,
    *,
    group: bool = False,
    timeout_s: float = 120.0,
    poll_s: float = 0.02,
) -> tuple:
    """Send ``sig`` to ``process`` (its process group with ``group``) once ``ready()`` is
    true, then wait for it; returns ``communicate()``'s (stdout, stderr). The process is
    killed if it outlives the waits."""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if ready():
                if group:
                    os.killpg(process.pid, sig)
                else:
                    process.send_signal(sig)
                break
            time.sleep(poll_s)
        return process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
