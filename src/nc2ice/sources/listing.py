"""The listing step: which files a dataset has now, and what changed since the last run.

Every run lists the sources again (globs and object listings give size, ETag and
Last-Modified for free; URL lists cost a HEAD each) and compares with the batch lists of
the last run.  New files go into batches, changed files rewrite their batch's list (so that
batch is rescanned), and files that are gone are reported and, by `on_vanished`, either
stop the run or leave the next snapshot.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nc2ice.access import Access, normalize_url, prefix_of
from nc2ice.atomic import atomic_write_text
from nc2ice.errors import AccessError
from nc2ice.sources import batches
from nc2ice.sources.files import (
    Source,
    describe,
    expand_parts,
    origin,
    patterns,
    table_text,
)

log = logging.getLogger(__name__)


@dataclass
class Listing:
    sources: list[Source]
    new: list[Source] = field(default_factory=list)
    changed: list[Source] = field(default_factory=list)
    gone: list[Source] = field(default_factory=list)
    retried: list[Source] = field(default_factory=list)  # skipped by their last scan
    batches_changed: list[str] = field(default_factory=list)

    @property
    def unreadable(self) -> list[Source]:
        return [s for s in self.sources if s.error]


def list_dataset(
    config: dict[str, Any], dataset: str, table: str | Path, folder: str | Path
) -> Listing:
    ds = config["datasets"][dataset]
    access = Access.from_config(config)
    folder = Path(folder)
    before = batches.previous(folder)
    origins: dict[str, str] = {}
    entries = patterns(ds)
    listed = expand_parts(ds, access, config["http"]["max_connections"], origins)
    known = {s.url: s.file_id for s in before}
    for url, meta in listed.items():
        if meta is None and url not in known:
            listed[url] = {}  # new: its first scan request tells its version, no HEAD needed
    found = describe(
        listed,
        access,
        workers=config["http"]["max_connections"],
        on_error=ds["on_error"],
        known_ids=known,
    )
    for source in found:
        source.origin = origins[source.url]
    manifests = Path(table).parent / "manifests"
    scans = Scans(batches.scanned_versions(manifests), batches.skipped_at_scan(manifests))
    listing = _compare(found, before, scans, ds, {origin(p) for p in entries})
    batches.assign(listing.sources, before, ds["batch_size"])
    listing.batches_changed = batches.write(listing.sources, folder, set(batches.names(folder)))
    atomic_write_text(Path(table), table_text(listing.sources))  # Snakemake removed it anyway
    _log(dataset, listing)
    return listing


@dataclass
class Scans:
    """What the last scans saw: each file's version, and the files they skipped."""

    versions: dict[str, tuple]
    skipped: set[str]


def _compare(
    found: list[Source],
    before: list[Source],
    scans: Scans,
    ds: dict[str, Any],
    entries: set[str],
) -> Listing:
    """New, changed and gone files.  A file whose entry (URL, glob, catalog) the config no
    longer has was dropped on purpose; one that an entry still lists but that is not there
    any more is gone.  An unchanged file keeps its row as it was, so its batch's list stays
    the same; a file the last scan skipped as unreadable is tried again."""
    old = {s.url: s for s in before}
    listing = Listing(sources=[])
    for source in found:
        previous = old.get(source.url)
        if previous is not None and _not_found(source) and not previous.error:
            listing.gone.append(previous)
            continue
        if previous is None:
            listing.new.append(source)
        elif not source.error and source.version() != _known(previous, scans.versions):
            listing.changed.append(source)
        elif not source.error and not previous.error:
            source = replace(previous, origin=source.origin)
            if source.url in scans.skipped:  # a fault may have passed: try it again
                source.tries += 1
                listing.retried.append(source)
        listing.sources.append(source)
    listed = {s.url for s in found}
    named = [_named_by(p) for p in entries]
    for source in before:
        if source.url in listed or source.error:
            continue
        still = source.origin in entries if source.origin else _named(source.url, named)
        if still:
            listing.gone.append(source)
    if listing.gone and ds["on_vanished"] == "fail":
        shown = ", ".join(s.url for s in listing.gone[:5])
        more = f" and {len(listing.gone) - 5} more" if len(listing.gone) > 5 else ""
        raise AccessError(
            f"{len(listing.gone)} file(s) listed before are gone: {shown}{more}. "
            "Set `on_vanished: drop` to leave them out of the next snapshot"
        )
    unreadable = [s for s in listing.sources if s.error]
    if unreadable and ds["on_error"] == "fail":
        raise AccessError(
            f"{unreadable[0].url}: {unreadable[0].error} (`on_error: skip` leaves such files out)"
        )
    return listing


def _known(previous: Source, scanned: dict[str, tuple]) -> tuple:
    """The version of a file the last run knew: listed, or else seen by its scan."""
    return previous.version() if any(previous.version()) else scanned.get(previous.url, ())


def _named_by(pattern: str) -> str:
    """What a source entry of an older listing (without origins) names: a URL or glob; for
    a catalog, anything on its server."""
    if pattern.startswith(("http://", "https://")) and pattern.endswith(".xml"):
        return prefix_of(pattern) + "*"
    return normalize_url(pattern)


def _named(url: str, named: list[str]) -> bool:
    return any(url == p or fnmatch.fnmatchcase(url, p) for p in named)


def _not_found(source: Source) -> bool:
    return bool(source.error) and ("not found" in source.error or "no such file" in source.error)


def _log(dataset: str, listing: Listing) -> None:
    unchanged = len(listing.sources) - len(listing.new) - len(listing.changed)
    log.info(
        "%s: %d source files listed: %d new, %d changed, %d unchanged, %d gone",
        dataset,
        len(listing.sources),
        len(listing.new),
        len(listing.changed),
        unchanged,
        len(listing.gone),
    )
    for source in listing.changed:
        log.info("%s: %s changed since the last listing; it will be rescanned", dataset, source.url)
    for source in listing.gone:
        log.warning("%s: %s is gone; it leaves the next snapshot", dataset, source.url)
    for source in listing.unreadable:
        log.warning("%s: %s (will be skipped)", source.url, source.error)
    for source in listing.retried:
        log.info("%s: %s was skipped by its last scan; it is tried again", dataset, source.url)
    if listing.batches_changed:
        log.info(
            "%s: %d batch(es) to scan: %s",
            dataset,
            len(listing.batches_changed),
            ", ".join(listing.batches_changed[:10]),
        )
    else:
        log.info("%s: nothing changed", dataset)
