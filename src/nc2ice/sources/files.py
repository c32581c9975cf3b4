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
from urllib.parse import unquote, urlsplit

from obspec_utils.glob import glob_objects

from nc2ice import tables
from nc2ice.access import (
    Access,
    canonical_url,
    file_url,
    identity,
    key_url,
    local_path,
    normalize_url,
    prefix_of,
    referenceable_path,
    referenceable_url,
)
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
    origin: str = ""  # the config entry that lists it (a URL, glob or catalog)
    tries: int = 0  # scans that skipped it as unreadable: each run tries it again

    def version(self) -> tuple[int, str, str]:
        """What changes when the file is rewritten."""
        return (self.size, self.etag, self.last_modified)


def read_sources_file(path: str | Path) -> list[str]:
    lines = Path(path).read_text().splitlines()
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]


def patterns(ds: dict[str, Any], *, missing_ok: bool = False) -> list[str | dict[str, Any]]:
    """A dataset's source entries: its ``sources`` and the lines of its ``sources_file``
    (which, with ``missing_ok``, may not exist yet); a fused dataset's, those of its parts."""
    if ds.get("parts"):
        return [e for part in ds["parts"].values() for e in patterns(part, missing_ok=missing_ok)]
    found = list(ds.get("sources") or [])
    sources_file = ds.get("sources_file")
    if sources_file and not (missing_ok and not Path(sources_file).exists()):
        found += read_sources_file(sources_file)
    return found


def part_patterns(ds: dict[str, Any]) -> dict[str, list[str | dict[str, Any]]]:
    """Each part's source entries; a dataset without ``parts`` is one part named ''."""
    if not ds.get("parts"):
        return {"": patterns(ds)}
    return {name: patterns(part) for name, part in ds["parts"].items()}


def file_parts(ds: dict[str, Any], sources: list[Source]) -> dict[str, str]:
    """The part each listed file belongs to, by its file id: the part whose entry (URL,
    glob, catalog) listed it (the listing refuses a file two parts list)."""
    by_entry = {origin(e): name for name, entries in part_patterns(ds).items() for e in entries}
    found = {}
    for source in sources:
        if source.origin not in by_entry:
            raise AccessError(
                f"{source.url}: no part of the dataset lists it any more ({source.origin!r}): "
                "list the sources again"
            )
        found[source.file_id] = by_entry[source.origin]
    return found


def expand_parts(
    ds: dict[str, Any], access: Access, workers: int, origins: dict[str, str]
) -> dict[str, dict[str, Any] | None]:
    """``expand`` over every part's entries, refusing a file two parts list: a file's
    variables belong to one part."""
    found: dict[str, dict[str, Any] | None] = {}
    part_of: dict[str, str] = {}
    for name, entries in part_patterns(ds).items():
        for url, meta in expand(entries, access, workers, origins).items():
            if part_of.setdefault(url, name) != name:
                raise AccessError(
                    f"{url} is listed by part {part_of[url]!r} and by part {name!r}: "
                    "a file belongs to one part (list it in one of them)"
                )
            found.setdefault(url, meta)
    return found


def expand(
    patterns: list[str | dict[str, Any]],
    access: Access,
    workers: int = 4,
    origins: dict[str, str] | None = None,
) -> dict[str, dict[str, Any] | None]:
    """Every source's URL, globs expanded and catalogs followed, in the order given, without
    repeats; with its size, ETag and Last-Modified where the listing told them (else None).
    ``origins`` receives the entry that listed each URL (``origin``)."""
    found: dict[str, dict[str, Any] | None] = {}
    for pattern in patterns:
        if isinstance(pattern, dict):
            matches = _catalog(pattern, access, workers)
        else:
            matches = _expand_one(pattern, access)
        if not matches:
            raise AccessError(f"{origin(pattern)}: matches no file")
        for url, meta in matches.items():
            found.setdefault(url, meta)
            if origins is not None:
                origins.setdefault(url, origin(pattern))
    return found


def origin(pattern: str | dict[str, Any]) -> str:
    """How a source entry is named in the listing's table: its URL, glob or catalog."""
    return pattern["thredds"] if isinstance(pattern, dict) else str(pattern)


def _catalog(
    entry: dict[str, Any], access: Access, workers: int
) -> dict[str, dict[str, Any] | None]:
    from nc2ice.sources.thredds import crawl

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
    """The files one entry names: a URL, or a glob (local paths and s3:// only)."""
    scheme = urlsplit(pattern).scheme
    if scheme == "file" or not scheme or len(scheme) == 1:
        return _expand_local(local_pattern(pattern), access)
    url = referenceable_url(pattern)
    if scheme == "s3":  # a glob as typed: an encoded '%3F' is a character of the key
        typed_key = pattern.split("://", 1)[1].partition("/")[2]
        return _expand_s3(url, access) if GLOB_CHARS.search(typed_key) else {url: None}
    if GLOB_CHARS.search(urlsplit(url).path):  # '?' starts a query here, not a glob
        raise AccessError(f"{url}: globs work for local paths and s3:// only, not {scheme}://")
    return {url: None}


def local_pattern(pattern: str) -> Path:
    """The absolute path (or glob) a local entry names, as the filesystem spells it: a path
    as typed, or a ``file://`` URL decoded."""
    if urlsplit(pattern).scheme == "file":
        return local_path(normalize_url(pattern))
    return Path(pattern).expanduser().resolve()


def _expand_local(path: Path, access: Access) -> dict[str, dict[str, Any] | None]:
    """A local file, or the files a glob matches, sorted by path.  Globs are expanded on
    the path itself, before it becomes a URL; a file that exists under the name as typed is
    that file, and folders that exist under their names as typed are taken literally, so a
    '[' or '*' in a folder's name works (as far as glob allows it in the rest)."""
    if path.is_file() or not GLOB_CHARS.search(str(path)):
        referenceable_path(path)
        return {file_url(path): None}
    found = sorted(glob.glob(_literal_folders(path), recursive=True))
    files = [Path(p) for p in found if Path(p).is_file()]
    for file in files:
        referenceable_path(file)  # refused at listing, in one line, not at the commit
    return {file_url(f): access.head(file_url(f)) for f in files}


def _literal_folders(path: Path) -> str:
    """A glob of ``path`` with its leading folders that exist escaped (taken literally)."""
    parts = path.parts
    existing = 1
    while existing < len(parts) - 1 and Path(*parts[: existing + 1]).is_dir():
        existing += 1
    folder = Path(*parts[:existing])
    rest = parts[existing:]
    return str(Path(glob.escape(str(folder)), *rest))


def _expand_s3(url: str, access: Access) -> dict[str, dict[str, Any] | None]:
    """Objects matching a glob, with their metadata from the listing itself (no HEAD each).
    As for local paths, ``*`` stops at ``/`` and ``**`` crosses folders."""
    prefix = prefix_of(url)
    store = access.object_store(prefix)
    try:
        listed = list(glob_objects(store, access.path_in_store(url)))
    except Exception as exc:
        raise access.error(url, exc, "cannot list") from None
    return {
        key_url(prefix, m["path"]): identity(m) for m in sorted(listed, key=lambda m: m["path"])
    }


def file_ids(urls: list[str], known: dict[str, str] | None = None) -> list[str]:
    """Readable ids from the file names (decoded: ``a%20b.nc`` is ``a_b``); names that
    repeat get a short hash of their URL.  URLs listed before keep the id they had (their
    manifests are found under it)."""
    known = known or {}
    stems = [_clean(Path(unquote(urlsplit(u).path)).name) for u in urls]
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
    them, else from a HEAD request, at most ``workers`` at once.  A file that cannot be
    asked keeps the error (a file listed before may be gone: ``on_vanished`` decides);
    with ``on_error: fail`` a new one stops the listing."""
    known_ids = known_ids or {}

    def head(pair: tuple[str, str]) -> Source:
        file_id, url = pair
        if found[url] is not None:
            return Source(file_id, url, **found[url])
        try:
            return Source(file_id, url, **access.head(url))
        except AccessError as exc:
            if on_error == "fail" and url not in known_ids:
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
    rows = tables.read(path, Source)
    for row in rows:  # older versions wrote local paths unencoded: the same files
        row.url = canonical_url(row.url)
    return rows
