"""Progress of long runs through tqdm, readable wherever the output goes.

Where a redrawn line shows as one line (a terminal, a Jupyter notebook) a live tqdm bar
(``tqdm.auto``: a widget in notebooks with ipywidgets) is drawn. Where it does not (a
file, a pipe, a SLURM log, a CI job), carriage-return redraws would pile up, so a
plain line is written at most every :data:`LINE_INTERVAL_S` seconds, and one at the
end::

    blocks 12/100 (12%), 1.3 sims/s, elapsed 9.2s, ETA 1m07s
    all 100 blocks done, 1.4 sims/s, elapsed 1m11s

Progress goes to ``sys.stderr`` (read when the progress starts, so redirections apply).
"""

from __future__ import annotations

import sys
import time
import warnings

__all__ = ["LINE_INTERVAL_S", "Progress", "is_live", "in_notebook", "live_bar", "duration", "rate"]

LINE_INTERVAL_S = 10.0  # seconds between progress lines in a file or pipe


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (the test tqdm.auto makes)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def is_live(stream) -> bool:
    """Whether a bar redrawn in place reads as one line on ``stream``: a terminal or a
    notebook's output (not a file or a pipe)."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed file
        pass
    return in_notebook()


def live_bar(**kwargs):
    """A ``tqdm.auto.tqdm`` bar (its notice that ipywidgets is missing is not shown: the
    text bar it falls back to works in notebooks too)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm
    return tqdm(**kwargs)


def duration(seconds: float) -> str:
    """``9.2s``, ``42s``, ``2m10s``, ``1h05m``."""
    seconds = max(0.0, float(seconds))
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def rate(value: float) -> str:
    """A rate with 3 significant digits, without exponents: ``0.0123``, ``1.3``, ``1234``."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


class Progress:
    """Progress of ``total`` steps: a live tqdm bar, or a line every ``interval_s`` seconds.

    Parameters
    ----------
    total : number of steps.
    unit : what a step is, plural (``"blocks"``).
    work_unit : what the ``work`` of :meth:`update` counts (``"sims"``): its rate is shown
        (``sims/s``); None: the rate of steps.
    enabled : False: show nothing.
    stream : where to write (default ``sys.stderr``).
    interval_s : seconds between lines when the stream is not live (there is always a
        line when the last step is done).
    live : True: a tqdm bar; False: lines; None: a bar if :func:`is_live` (``stream``).
    """

    def __init__(
        self,
        total: int,
        *,
        unit: str = "blocks",
        work_unit: str | None = None,
        enabled: bool = True,
        stream=None,
        interval_s: float = LINE_INTERVAL_S,
        live: bool | None = None,
    ):
        self.total, self.unit, self.work_unit = int(total), unit, work_unit
        self.enabled = bool(enabled) and self.total > 0
        self.stream = sys.stderr if stream is None else stream
        self.interval_s = float(interval_s)
        self.done = self.work = 0
        self.start = self._last_line = time.perf_counter()
        self._line_at = None  # steps done when the last line was written
        self._bar = None
        if self.enabled and (is_live(self.stream) if live is None else live):
            self._bar = live_bar(
                total=self.total,
                desc=unit,
                unit=unit,
                file=self.stream,
                dynamic_ncols=True,
                mininterval=0.5,
                bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
            )

    def update(self, steps: int = 1, work: int = 0) -> None:
        """``steps`` more steps done, which did ``work`` units of work."""
        self.done += steps
        self.work += work
        if not self.enabled:
            return
        now = time.perf_counter()
        if self._bar is not None:
            if self.work_unit:
                self._bar.set_postfix_str(
                    f"{rate(self.work / max(now - self.start, 1e-9))} {self.work_unit}/s", refresh=False
                )
            self._bar.update(steps)
        elif self.done >= self.total or now - self._last_line >= self.interval_s:
            self._line(now)

    def close(self) -> None:
        """End the bar, or write the last line (if the last one is not up to date)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._line_at != self.done:
            self._line(time.perf_counter(), stopped=self.done < self.total)

    def _line(self, now: float, stopped: bool = False) -> None:
        self._last_line, self._line_at = now, self.done
        elapsed = max(now - self.start, 1e-9)
        speed = (
            f"{rate(self.work / elapsed)} {self.work_unit}/s"
            if self.work_unit
            else f"{rate(self.done / elapsed)} {self.unit}/s"
        )
        if self.done >= self.total:
            text = f"all {self.total} {self.unit} done, {speed}, elapsed {duration(elapsed)}"
        else:
            text = (
                f"{self.unit} {self.done}/{self.total} ({100 * self.done / self.total:.0f}%), {speed}, "
                f"elapsed {duration(elapsed)}"
            )
            if stopped:
                text += ", stopped"
            elif self.done:
                text += f", ETA {duration(elapsed * (self.total - self.done) / self.done)}"
        self.stream.write(text + "\n")
        self.stream.flush()
