"""Points where a run can be held, so that tests kill it exactly there.

With ``NC2ICE_PAUSE_AT=<point>`` a run that reaches the point touches the file named by
``NC2ICE_PAUSE_MARKER`` and sleeps ``NC2ICE_PAUSE_SECONDS`` (default: an hour) before it
goes on.  Nothing happens without the variable.
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
    time.sleep(float(os.environ.get("NC2ICE_PAUSE_SECONDS", "3600")))
