"""Progress bars for the long loops (two-tower epochs, ranker features and rounds, evaluation, batch
inference, materialization), for a person watching a terminal.

A bar is drawn only when standard error is a terminal, and on its own handle to that terminal: a pipeline
runner that captures the process's output into stored logs (ZenML's step logs) therefore never stores the
redraws. Without a terminal (CI, `| tee`, a Kubeflow pod) bars are no-ops and the loops' own summary lines
(one per epoch, one per stage) are the record. `RECSYS_PROGRESS=0` turns bars off, `=1` forces them.

Hand-written over tqdm (which draws the bar): tqdm has no notion of a terminal handle that bypasses a
wrapped sys.stderr, nor of printing a line above a live bar through another stream.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

_terminal = None


def _stream():
    """A text handle on the terminal behind standard error, not the (possibly wrapped) sys.stderr object."""
    global _terminal
    if _terminal is None:
        _terminal = os.fdopen(os.dup(sys.__stderr__.fileno()), "w", buffering=1)
    return _terminal


def interactive() -> bool:
    setting = os.environ.get("RECSYS_PROGRESS", "")
    if setting in ("0", "1"):
        return setting == "1"
    try:
        return sys.__stderr__ is not None and os.isatty(sys.__stderr__.fileno())
    except (OSError, ValueError):  # no real file behind stderr (e.g. a test runner's capture)
        return False


class Bar:
    """`with Bar(total, "two-tower") as bar: bar.update(); bar.write("epoch 1 ...")`. A no-op without a
    terminal except `write`, which always prints its line (to stdout, where the run's other lines go);
    `enabled=False` silences both (a caller's verbose=0)."""

    def __init__(self, total: Optional[int], desc: str, unit: str = "it", enabled: bool = True):
        self._bar, self.enabled = None, enabled
        if enabled and interactive():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, leave=False, file=_stream(), dynamic_ncols=True,
                             mininterval=0.5, smoothing=0.1)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def set(self, **values) -> None:
        """Figures shown after the bar (e.g. loss=5.21)."""
        if self._bar is not None:
            self._bar.set_postfix(values, refresh=False)

    def write(self, line: str) -> None:
        """Print a line that stays (above the bar while it runs)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.clear()
        print(line, flush=True)
        if self._bar is not None:
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
