"""Progress bars (tqdm, on stderr, with an ETA) for runs and sweeps. A bar appears only once its
work has lasted ``BAR_DELAY_S`` seconds, so short runs stay silent; callers ask for one only
when stderr is a terminal and ``--quiet`` is not given. In a sweep worker (CLENV_BAR_POSITION,
set by clenv.sweep.worker) a run's bar is drawn on the line under the sweep's bar."""

from __future__ import annotations

import os
import sys

BAR_DELAY_S = 2.0


def wants_progress(quiet: bool) -> bool:
    """Bars are drawn only on a terminal and without --quiet."""
    return not quiet and sys.stderr.isatty()


def progress_bar(total: int, unit: str, desc: str, *, leave: bool = False):
    """A tqdm bar on stderr: count, rate and ETA; shown after BAR_DELAY_S seconds."""
    from tqdm import tqdm

    position = int(os.environ.get("CLENV_BAR_POSITION", "0") or 0)
    return tqdm(total=total, unit=unit, desc=desc, leave=leave, delay=BAR_DELAY_S,
                position=position, file=sys.stderr, dynamic_ncols=True)
