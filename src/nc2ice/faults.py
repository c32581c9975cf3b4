"""Points where a run can be held, so that tests kill it exactly there.

With ``NC2ICE_PAUSE_AT=<point>`` a run that reaches the point touches the file named by
``NC2ICE_PAUSE_MARKER`` and sleeps ``NC2ICE_PAUSE_SECONDS`` (default: an hour) before it
goes on, or until the file named by ``NC2ICE_PAUSE_UNTIL`` exists.  Nothing happens without
the variable.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def pause(point: str) -> None:
    if os.environ.get("NC2ICE_PAUSE_AT") != point:
        return
    marker = os.environ.get("NC2ICE_PAUSE_MARKER")
    if marker:
        Path(marker).touch()
    until = os.environ.get("NC2ICE_PAUSE_UNTIL")  # a file the test creates to let it go on
    deadline = time.monotonic() + float(os.environ.get("NC2ICE_PAUSE_SECONDS", "3600"))
    while time.monotonic() < deadline and not (until and Path(until).exists()):
        time.sleep(0.1)
