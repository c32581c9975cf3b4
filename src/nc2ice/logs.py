"""What a run prints: its log in words, without the libraries' noise."""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path


def quiet_libraries() -> None:
    """Silence warnings that tell a user nothing: Icechunk's on every open that local storage
    is not for concurrent commits (each store is committed from one job), zarr's that
    numcodecs and record types are not in the v3 spec (they are what the files use), and
    xarray's about decoding choices it makes the same way every time."""
    if "icechunk" in sys.modules:
        sys.modules["icechunk"].set_logs_filter(os.environ.get("ICECHUNK_LOG", "error"))
    else:  # read when it is first imported: jobs that never need Icechunk do not load it
        os.environ.setdefault("ICECHUNK_LOG", "error")
    for message in (
        "Numcodecs codecs are not in the Zarr version 3",
        "The data type .* does not have a Zarr V3 specification",
        ".*is currently not part in the Zarr format 3 specification",
    ):
        warnings.filterwarnings("ignore", message=message)
    warnings.filterwarnings("ignore", category=UserWarning, module="xarray")
    warnings.filterwarnings("ignore", category=UserWarning, module="zarr")
    logging.getLogger("hdf5plugin").setLevel(logging.WARNING)  # "filter already loaded"


class _LogFile(logging.FileHandler):
    """A log file that gives up quietly when it cannot be written (a full disk): the same
    lines go to stderr, where the run's one-line error still reaches the user."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        return None


def setup_logging(logfile: str | None) -> None:
    quiet_libraries()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logfile:
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(_LogFile(logfile, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )


class Progress:
    """Logs "done of total, rate, time left" at most every ``every`` seconds; a stage that
    ends before the first line is due stays quiet (its summary line says enough)."""

    def __init__(self, what: str, total: int, every: float = 10.0):
        self.what, self.total, self.every = what, total, every
        self.start = self.last = time.monotonic()
        self.done = 0

    def advance(self, n: int = 1) -> None:
        self(self.done + n)

    def __call__(self, done: int, total: int | None = None) -> None:
        self.done = done
        total = total or self.total
        now = time.monotonic()
        if now - self.last < self.every and (done < total or self.last == self.start):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        left = (total - done) / rate if rate else float("inf")
        logging.getLogger("nc2ice").info(
            "%s %d of %d (%.1f/s, about %s left)", self.what, done, total, rate, _duration(left)
        )


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
