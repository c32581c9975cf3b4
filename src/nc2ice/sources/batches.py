"""Batches: the files one scan job takes, assigned once and kept across reruns.

A file stays in the batch it was first given, so adding files never reshuffles the existing
batches: new files fill the last batch, then new ones.  Each batch has its own list of
sources (``batches/<batch>.tsv``), rewritten only when one of its files is added, changed or
gone, so Snakemake reruns exactly the scan jobs whose files changed.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from nc2ice.atomic import atomic_write_text
from nc2ice.sources.files import Source, read_table, table_text


def batch_name(number: int) -> str:
    return f"b{number:05d}"


def previous(folder: Path) -> list[Source]:
    """The sources of the last listing, as its batch lists hold them."""
    return [s for path in sorted(folder.glob("b*.tsv")) for s in read_table(path)]


def scanned_versions(folder: Path) -> dict[str, tuple[int, str, str]]:
    """The version of each file its last scan saw, from the scan indexes."""
    from nc2ice.model.index import read_index

    return {
        row.url: (row.size, row.etag, row.last_modified)
        for path in sorted(folder.glob("b*.tsv"))
        for row in read_index(path)
        if not row.skipped
    }


def skipped_at_scan(folder: Path) -> set[str]:
    """The files the last scans skipped as unreadable (from the scan indexes)."""
    from nc2ice.model.index import read_index

    return {row.url for path in folder.glob("b*.tsv") for row in read_index(path) if row.skipped}


def assign(sources: list[Source], before: list[Source], batch_size: int) -> None:
    """Give every source a batch: the one it had, else room in the last batch, else a new one."""
    had = {s.url: s.batch for s in before if s.batch}
    sizes = Counter(had[s.url] for s in sources if s.url in had)
    numbers = [int(b[1:]) for b in had.values()]
    last = max(numbers, default=-1)
    for source in sources:
        if source.url in had:
            source.batch = had[source.url]
            continue
        if last < 0 or sizes[batch_name(last)] >= batch_size:
            last += 1
        source.batch = batch_name(last)
        sizes[source.batch] += 1


def write(sources: list[Source], folder: Path, names: set[str]) -> list[str]:
    """Write each batch's list where it changed; return the batches whose list changed.
    ``names`` are the batches that exist already (a batch whose files all went is emptied)."""
    by_batch: dict[str, list[Source]] = {name: [] for name in names}
    for source in sources:
        by_batch.setdefault(source.batch, []).append(source)
    changed = []
    for name, members in sorted(by_batch.items()):
        path = folder / f"{name}.tsv"
        text = table_text(members)
        if not path.exists() or path.read_text() != text:
            atomic_write_text(path, text)
            changed.append(name)
    return changed


def names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("b*.tsv"))
