"""Listing a dataset's source files: expanding globs, naming each file, recording its identity."""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import obstore
import pandas as pd

from nc2ice.access import Access, AccessError, local_path, normalize_url, prefix_of
from nc2ice.manifest import atomic_write_text

COLUMNS = ["file_id", "url", "size", "etag", "last_modified", "error"]
GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass
class Source:
    file_id: str
    url: str
    size: int = 0
    etag: str = ""
    last_modified: str = ""
    error: str = ""


def read_sources_file(path: str | Path) -> list[str]:
    lines = Path(path).read_text().splitlines()
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]


def expand(patterns: list[str], access: Access) -> list[str]:
    """URLs of every source, globs expanded, in the order given, without repeats."""
    urls: list[str] = []
    for pattern in patterns:
        found = _expand_one(pattern, access)
        if not found:
            raise AccessError(f"{pattern}: matches no file")
        urls.extend(found)
    return list(dict.fromkeys(urls))


def _expand_one(pattern: str, access: Access) -> list[str]:
    url = normalize_url(pattern)
    if not GLOB_CHARS.search(urlsplit(url).path):
        return [url]
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return [normalize_url(p) for p in sorted(glob.glob(str(local_path(url))))]
    if scheme == "s3":
        return _expand_s3(url, access)
    raise AccessError(f"{pattern}: globs work for local paths and s3:// only, not {scheme}://")


def _expand_s3(url: str, access: Access) -> list[str]:
    prefix = prefix_of(url)
    path = access.path_in_store(url)
    literal = GLOB_CHARS.split(path, maxsplit=1)[0].rpartition("/")[0]
    store = access.object_store(prefix)
    try:
        listed = [m["path"] for batch in obstore.list(store, prefix=literal or None) for m in batch]
    except Exception as exc:
        raise AccessError(f"{url}: cannot list ({exc})") from exc
    return [prefix + p for p in sorted(listed) if fnmatch.fnmatchcase(p, path)]


def file_ids(urls: list[str]) -> list[str]:
    """Readable ids from the file names; names that repeat get a short hash of their URL."""
    stems = [_clean(Path(urlsplit(u).path).name) for u in urls]
    counts = Counter(stems)
    return [
        s if counts[s] == 1 else f"{s}-{hashlib.sha1(u.encode()).hexdigest()[:8]}"
        for s, u in zip(stems, urls, strict=True)
    ]


def _clean(name: str) -> str:
    for suffix in (".nc4", ".nc", ".h5", ".hdf5", ".hdf", ".he5", ".cdf"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "file"


def describe(urls: list[str], access: Access, *, workers: int, on_error: str) -> list[Source]:
    """Size, ETag and Last-Modified of each source, fetched with at most ``workers`` at once."""

    def head(pair: tuple[str, str]) -> Source:
        file_id, url = pair
        try:
            return Source(file_id, url, **access.head(url))
        except AccessError as exc:
            if on_error == "fail":
                raise
            return Source(file_id, url, error=str(exc).removeprefix(f"{url}: "))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(head, zip(file_ids(urls), urls, strict=True)))


def write_table(sources: list[Source], path: str | Path) -> None:
    frame = pd.DataFrame([asdict(s) for s in sources], columns=COLUMNS)
    atomic_write_text(Path(path), frame.to_csv(sep="\t", index=False))


def read_table(path: str | Path) -> list[Source]:
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return [Source(**{**row, "size": int(row["size"] or 0)}) for row in frame.to_dict("records")]
