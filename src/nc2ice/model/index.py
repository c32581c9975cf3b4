"""A batch's scan index (``manifests/<batch>.tsv``): each file, its manifest and what the scan
cost, and the version of the file it saw (or why it skipped the file).

Written by the scan, read by the listing (what the last scans saw) and by the commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nc2ice import tables
from nc2ice.access import canonical_url


@dataclass
class Scanned:
    """One row of a batch's index: a file, its manifest, and what the scan cost."""

    file_id: str
    url: str
    size: int = 0
    etag: str = ""
    last_modified: str = ""
    manifest: str = ""
    sha256: str = ""
    variables: int = 0
    references: int = 0
    requests: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    reused: bool = False
    skipped: str = ""


def write_index(rows: list[Scanned], path: str | Path) -> None:
    tables.write(rows, Scanned, path)


def read_index(path: str | Path) -> list[Scanned]:
    rows = tables.read(path, Scanned)
    for row in rows:  # older versions wrote local paths unencoded
        row.url = canonical_url(row.url)
    return rows


def scanned_versions(rows: list[Scanned]) -> dict[str, dict[str, Any]]:
    """The version each scanned file had, by URL: what the commit's and the validation's
    reads of the sources must see (``Access.pinned``)."""
    return {
        row.url: {"size": row.size, "etag": row.etag, "last_modified": row.last_modified}
        for row in rows
        if not row.skipped
    }
