"""Tab-separated tables of dataclass rows: the listing, the batches, the scan indexes.

Plain `csv`, so a scan job does not import pandas (a third of a second per job).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

from nc2ice.atomic import atomic_write_text

Row = TypeVar("Row")


def text(rows: list[Any], kind: type) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(
        out, [f.name for f in fields(kind)], delimiter="\t", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    return out.getvalue()


def write(rows: list[Any], kind: type, path: str | Path) -> None:
    atomic_write_text(path, text(rows, kind))


def read(path: str | Path, kind: type[Row]) -> list[Row]:
    """Rows of ``kind``; columns the table lacks take the field's default."""
    types = {f.name: f.type for f in fields(kind)}  # strings: annotations are postponed
    with Path(path).open(newline="") as f:
        return [
            kind(**{k: _typed(v, types[k]) for k, v in record.items() if k in types})
            for record in csv.DictReader(f, delimiter="\t")
        ]


def _typed(value: str, kind: str) -> Any:
    if kind == "int":
        return int(value or 0)
    if kind == "float":
        return float(value or 0)
    if kind == "bool":
        return value == "True"
    return value
