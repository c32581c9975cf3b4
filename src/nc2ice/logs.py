"""What a run prints: its log in words, without the libraries' noise."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import icechunk


def quiet_libraries() -> None:
    """Silence warnings that tell a user nothing: Icechunk's on every open that local storage
    is not for concurrent commits (each store is committed from one job), zarr's that
    numcodecs and record types are not in the v3 spec (they are what the files use), and
    xarray's about decoding choices it makes the same way every time."""
    icechunk.set_logs_filter("error")
    for message in (
        "Numcodecs codecs are not in the Zarr version 3",
        "The data type .* does not have a Zarr V3 specification",
        ".*is currently not part in the Zarr format 3 specification",
    ):
        warnings.filterwarnings("ignore", message=message)
    warnings.filterwarnings("ignore", category=UserWarning, module="xarray")
    warnings.filterwarnings("ignore", category=UserWarning, module="zarr")


def setup_logging(logfile: str | None) -> None:
    quiet_libraries()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logfile:
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(logfile, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
