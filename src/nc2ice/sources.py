"""Listing a dataset's source files: expanding globs, naming each file, recording its identity."""

from __future__ import annotations

import glob
import hashlib
import logging
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from obspec_utils.glob import glob_objects

from nc2ice import tables
from nc2ice.access import Access, identity, local_path, prefix_of, referenceable_url
from nc2ice.errors import AccessError
from nc2ice.logs import Progress

log = logging.getLogger(__name__)
GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass
class Source:
    file_id: str
    url: str
    size: int = 0
    etag: str = ""
    last_modified: str = ""
    batch: str = ""
    error: str = ""

    def version(self) -> tuple[int, str, str]:
        """What changes when the file is rewritten."""
        return (self.size, self.etag, self.last_modified)


def read_sources_file(path: str | Path) -> list[str]:
    lines = Path(path).read_text().splitlines()
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]


def patterns(ds: dict[str, Any], *, missing_ok: bool = False) -> list[str | dict[str, Any]]:
    """A dataset's source entries: its ``sources`` and the lines of its ``sources_file``
    (which, with ``missing_ok``, may not exist yet)."""
    found = list(ds.get("sources") or [])
    sources_file = ds.get("sources_file")
    if sources_file and not (missing_ok and not Path(sources_file).exists()):
        found += read_sources_file(sources_file)
    return found


def expand(
    patterns: list[str | dict[str, Any]], access: Access, workers: int = 4
) -> dict[str, dict[str, Any] | None]:
    """Every source's URL, globs expanded and catalogs followed, in the order given, without
    repeats; with its size, ETag and Last-Modified where the listing told them (else None)."""
    found: dict[str, dict[str, Any] | None] = {}
    for pattern in patterns:
        if isinstance(pattern, dict):
            matches = _catalog(pattern, access, workers)
            pattern = pattern["thredds"]
        else:
            matches = _expand_one(pattern, access)
        if not matches:
            raise AccessError(f"{pattern}: matches no file")
        for url, meta in matches.items():
            found.setdefault(url, meta)
    return found


def _catalog(
    entry: dict[str, Any], access: Access, workers: int
) -> dict[str, dict[str, Any] | None]:
    from nc2ice.thredds import crawl

    found = crawl(
        entry["thredds"],
        access,
        include=entry.get("include"),
        exclude=entry.get("exclude"),
        depth=entry.get("depth", 3),
        workers=workers,
    )
    log.info("%s: %d files in %d catalog(s)", entry["thredds"], len(found.files), found.catalogs)
    undated = sum(meta is None for meta in found.files.values())
    if undated:
        log.info("%s: %d files have no date in the catalog: HEAD each", entry["thredds"], undated)
    for note in found.notes:
        log.warning("%s", note)
    return found.files


def _expand_one(pattern: str, access: Access) -> dict[str, dict[str, Any] | None]:
    url = referenceable_url(pattern)
    if not GLOB_CHARS.search(urlsplit(url).path):
        return {url: None}
    scheme = urlsplit(url).scheme
    if scheme == "file":
        paths = sorted(glob.glob(str(local_path(url)), recursive=True))
        return {f"file://{p}": access.head(f"file://{p}") for p in paths if Path(p).is_file()}
    if scheme == "s3":
        return _expand_s3(url, access)
    raise AccessError(f"{pattern}: globs work for local paths and s3:// only, not {scheme}://")


def _expand_s3(url: str, access: Access) -> dict[str, dict[str, Any] | None]:
    """Objects matching a glob, with their metadata from the listing itself (no HEAD each).
    As for local paths, ``*`` stops at ``/`` and ``**`` crosses folders."""
    prefix = prefix_of(url)
    store = access.object_store(prefix)
    try:
        listed = list(glob_objects(store, access.path_in_store(url)))
    except Exception as exc:
        raise access.error(url, exc, "cannot list") from None
    return {prefix + m["path"]: identity(m) for m in sorted(listed, key=lambda m: m["path"])}


def file_ids(urls: list[str], known: dict[str, str] | None = None) -> list[str]:
    """Readable ids from the file names; names that repeat get a short hash of their URL.
    URLs listed before keep the id they had (their manifests are found under it)."""
    known = known or {}
    stems = [_clean(Path(urlsplit(u).path).name) for u in urls]
    new_stems = Counter(s for s, u in zip(stems, urls, strict=True) if u not in known)
    taken = set(known.values())
    return [
        known[u]
        if u in known
        else (s if new_stems[s] == 1 and s not in taken else f"{s}-{_short_hash(u)}")
        for s, u in zip(stems, urls, strict=True)
    ]


def _short_hash(url: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()[:8]


def _clean(name: str) -> str:
    for suffix in (".nc4", ".nc", ".h5", ".hdf5", ".hdf", ".he5", ".cdf"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "file"


def describe(
    found: dict[str, dict[str, Any] | None],
    access: Access,
    *,
    workers: int,
    on_error: str,
    known_ids: dict[str, str] | None = None,
) -> list[Source]:
    """Each source with its size, ETag and Last-Modified: from the listing where it gave
    them, else from a HEAD request, at most ``workers`` at once."""

    def head(pair: tuple[str, str]) -> Source:
        file_id, url = pair
        if found[url] is not None:
            return Source(file_id, url, **found[url])
        try:
            return Source(file_id, url, **access.head(url))
        except AccessError as exc:
            if on_error == "fail":
                raise
            return Source(file_id, url, error=str(exc).removeprefix(f"{url}: "))

    urls = list(found)
    asked = sum(meta is None for meta in found.values())
    progress = Progress("listing: HEAD requests answered", asked)
    sources = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for source in pool.map(head, zip(file_ids(urls, known_ids), urls, strict=True)):
            sources.append(source)
            if found[source.url] is None:
                progress.advance()
    return sources


def table_text(sources: list[Source]) -> str:
    return tables.text(sources, Source)


def write_table(sources: list[Source], path: str | Path) -> None:
    tables.write(sources, Source, path)


def read_table(path: str | Path) -> list[Source]:
    return tables.read(path, Source)
