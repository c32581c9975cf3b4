"""Scanning source files into manifests: one file, or a batch of files at once.

A batch scan keeps up to ``connections`` files in flight: requests run in threads, while
the parsing (CPU, and h5py's global lock) runs in the calling thread on bytes already
fetched.  A parse that needs bytes beyond those raises ``NeedBytes``; the bytes are fetched
in a thread and the file is parsed again (parsing is cheap, waiting is not).  Local files
are opened by path.

A manifest describes one version of its file: a remote file's reads are all tied to the
version its first response named (nc2ice.remote_file), and a local file's version is taken
before it is parsed and checked after; a file that changed meanwhile fails its scan as a
fault of the file ("changed while it was scanned"), and the next run scans it again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import time
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import obstore
from obstore.exceptions import BaseError as ObstoreError

from nc2ice.access import Access, differences, local_identity, local_path
from nc2ice.errors import AccessError, ScanError
from nc2ice.faults import pause
from nc2ice.model.index import Scanned
from nc2ice.model.manifest import Manifest, read_manifest_meta, write_manifest
from nc2ice.remote_file import NeedBytes, SourceReader
from nc2ice.scan.formats import Ranges, run_steps
from nc2ice.scan.formats.hdf5 import hdf5_steps
from nc2ice.scan.formats.netcdf3 import netcdf3_steps
from nc2ice.sources.files import Source

log = logging.getLogger(__name__)

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# HDF5 looks for its signature at 0, then 512, 1024, 2048, ... (a user block before it).
HDF5_USERBLOCK_OFFSETS = (0, *(512 << k for k in range(16)))
MAX_ROUNDS = 6  # restarts of a parse, then it fetches as it goes (a scattered layout)


def sniff(head: bytes, later: dict[int, bytes] | None = None) -> str:
    """The format from the first bytes: 'hdf5', 'netcdf3', or a ScanError saying what it is."""
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if any(block.startswith(HDF5_MAGIC) for block in (later or {}).values()):
        return "hdf5"
    if head[:3] == b"CDF" and len(head) > 3 and head[3] in (1, 2, 5):
        return "netcdf3"
    if not head:
        raise ScanError("the file is empty")
    text = head.lstrip()[:15].lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<")):
        raise ScanError(f"this is an HTML/XML page, not netCDF (starts {head[:40]!r})")
    if head[:3] == b"CDF":
        raise ScanError(f"unknown netCDF3 version byte {head[3:4]!r}")
    raise ScanError(f"not a netCDF or HDF5 file (starts {head[:16]!r})")


# -- one file -------------------------------------------------------------------------------


@dataclass
class Opened:
    """A source ready to parse: a local path, or a remote reader holding its head."""

    url: str
    path: Path | None = None
    reader: SourceReader | None = None
    # a local file: its version, and what tells a rewrite (size, time, inode), before parsing
    version: dict[str, Any] | None = None
    stat: tuple[int, ...] = ()

    def cost(self) -> dict[str, int]:
        if self.reader is None:
            return {"requests": 0, "bytes_read": 0}
        return {"requests": self.reader.requests, "bytes_read": self.reader.bytes_read}


def open_source(url: str, access: Access, head_bytes: int) -> Opened:
    """Make a source ready to parse; for a remote one, fetch its head (one request)."""
    if url.startswith("file://"):
        path = local_path(url)
        st = os.stat(path)
        return Opened(url, path=path, version=local_identity(path, st), stat=_signature(st))
    reader = access.reader(url, head_bytes=head_bytes)
    store = reader.store
    try:
        reader.fetch_head()
    except Exception as exc:
        if "Range request not supported" in str(exc):
            _refuse_rangeless(url, store, access)
        raise
    if reader.read(8).startswith(HDF5_MAGIC):
        # netCDF-C writes the chunk indexes (and often the coordinates) last: the tail
        # now saves parsing the file twice.
        reader.fetch_tail(head_bytes)
    return Opened(url, reader=reader)


def _refuse_rangeless(url: str, store: Any, access: Access) -> None:
    # A server that ignores Range often sends an error page; say what it sent.
    head = bytes(next(iter(obstore.get(store, access.path_in_store(url)).stream(64)), b""))
    sniff(head[:64])
    raise ScanError("the server does not answer HTTP Range requests, which reading needs")


def parse(opened: Opened, inline_limit: int) -> Generator[Ranges, None, Manifest]:
    """The scan of an opened source, as steps (see nc2ice.scan.formats); a remote parse raises
    NeedBytes when its layout lies beyond the bytes fetched."""
    if opened.path is not None:
        with opened.path.open("rb") as f:
            kind = _kind(f)
        if kind == "hdf5":
            return hdf5_steps(opened.url, str(opened.path), inline_limit)
        return netcdf3_steps(
            opened.url, opened.path.open("rb"), opened.path.stat().st_size, inline_limit
        )
    reader = opened.reader
    assert reader is not None
    reader.seek(0)
    kind = _kind(reader)
    reader.seek(0)
    if kind == "hdf5":
        return hdf5_steps(opened.url, reader, inline_limit)
    return netcdf3_steps(opened.url, reader, reader.length(), inline_limit)


def _local_netcdf3(url: str, path: Path, inline_limit: int) -> Generator[Ranges, None, Manifest]:
    with path.open("rb") as f:
        return (yield from netcdf3_steps(url, f, path.stat().st_size, inline_limit))


def _kind(f: Any) -> str:
    head = f.read(8)
    later = {}
    if not head.startswith((HDF5_MAGIC, b"CDF")) and head:
        for offset in HDF5_USERBLOCK_OFFSETS[1:]:
            f.seek(offset)
            block = f.read(8)
            if len(block) < 8:
                break
            later[offset] = block
    return sniff(head, later)


def scan_file(
    url: str, access: Access, *, inline_limit: int, head_bytes: int = 256 << 10
) -> Manifest:
    """One file's manifest, fetching as the parse goes (tests and one-off use)."""
    with _as_scan_error(url, access):
        opened = open_source(url, access, head_bytes)
        manifest = run_steps(parse(opened, inline_limit))
        manifest.identity = scanned_version(opened)
    return manifest


def scanned_version(opened: Opened) -> dict[str, Any]:
    """The version of the file the parse read: a remote file's reads were all tied to the
    one its first response named; a local file must be as it was before the parse."""
    if opened.reader is not None:
        return dict(opened.reader.meta)
    assert opened.path is not None and opened.version is not None
    try:
        st = os.stat(opened.path)
        now, stat = local_identity(opened.path, st), _signature(st)
    except FileNotFoundError:
        now, stat = {}, ()
    if stat != opened.stat:
        what = differences(opened.version, now) if now else "it was removed"
        raise ScanError(
            f"{opened.url}: changed while it was scanned ({what or 'replaced'}); "
            "a rerun scans it again"
        )
    return dict(opened.version)


def _signature(st: os.stat_result) -> tuple[int, ...]:
    """What changes when a local file is rewritten or replaced (a rename gives a new inode)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class _as_scan_error:  # noqa: N801 - used as a context manager
    """Faults of the file or its server become a ScanError (which `on_error: skip` may
    skip); anything else is a bug of ours and keeps its traceback."""

    def __init__(self, url: str, access: Access):
        self.url, self.access = url, access

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None or isinstance(exc, NeedBytes):
            return False
        url = self.url
        if isinstance(exc, (ScanError, AccessError)):
            message = str(exc)  # AccessError already names the URL
            raise ScanError(message if message.startswith(url) else f"{url}: {message}") from exc
        if isinstance(exc, (ObstoreError, FileNotFoundError)):
            raise ScanError(self.access.error(url, exc).args[0]) from exc
        if isinstance(exc, OSError):  # h5py's error for a truncated or corrupt file
            kind_ = "HDF5" if "signature" in str(exc) else "HDF5 (truncated or corrupt?)"
            raise ScanError(f"{url}: cannot read as {kind_} ({_first_line(exc)})") from exc
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


# -- a batch ----------------------------------------------------------------------------------


def scan_batch(
    sources: list[Source],
    folder: Path,
    access: Access,
    *,
    inline_limit: int,
    connections: int,
    head_bytes: int,
    on_error: str,
    progress: Callable[[int, int], None] | None = None,
) -> list[Scanned]:
    """Scan a batch into ``folder`` (one manifest per file), reusing the manifests of files
    that did not change, with up to ``connections`` files in flight."""
    settings = {"inline_threshold": inline_limit}
    results: dict[str, Scanned] = {}
    todo = []
    for source in sources:
        path = folder / f"{source.file_id}.json"
        reused = _reusable(source, path, settings)
        if reused is not None:
            results[source.file_id] = reused
        elif source.error:
            results[source.file_id] = _skipped(source, source.error, on_error)
        else:
            todo.append(source)
    _remove_strays(folder, {s.file_id for s in sources})
    if todo:
        options = (settings, connections, head_bytes, on_error, progress)
        results.update(_scan_all(todo, folder, access, *options))
    return [results[s.file_id] for s in sources]


def _reusable(source: Source, path: Path, settings: dict[str, Any]) -> Scanned | None:
    """The index row of a manifest still current for this version of the file, or None."""
    if not path.exists():
        return None
    raw = path.read_bytes()
    meta = read_manifest_meta(raw)
    if meta.get("scan", {}).get("settings") != settings:
        return None
    if meta.get("source", source.url) != source.url:  # an older version's unencoded path
        return None
    if not same_version(source, meta.get("identity", {})):
        return None
    stats = meta["scan"]
    identity = meta["identity"]
    return Scanned(
        file_id=source.file_id,
        url=source.url,
        size=int(identity.get("size", 0)),
        etag=identity.get("etag", ""),
        last_modified=identity.get("last_modified", ""),
        manifest=path.name,
        sha256=hashlib.sha256(raw).hexdigest(),
        variables=stats.get("variables", 0),
        references=stats.get("references", 0),
        reused=True,
    )


def same_version(source: Source, identity: dict[str, Any]) -> bool:
    """Whether a listing and a scan saw the same version of a file (the fields both know;
    a file listed without a version, new in the last listing, is what its scan saw)."""
    pairs = [
        (source.etag, identity.get("etag", "")),
        (source.last_modified, identity.get("last_modified", "")),
        (source.size, identity.get("size", 0)),
    ]
    return all(a == b for a, b in pairs if a and b)


def _skipped(source: Source, reason: str, on_error: str) -> Scanned:
    if on_error != "skip":
        raise ScanError(f"{source.url}: {reason} (`on_error: skip` leaves such files out)")
    log.warning("skipping %s: %s", source.url, reason)
    return Scanned(source.file_id, source.url, skipped=reason)


def _remove_strays(folder: Path, keep: set[str]) -> None:
    """Manifests of files no longer in the batch, and temporary files of a killed run."""
    if not folder.exists():
        return
    for path in folder.iterdir():
        if path.name.startswith(".") or (path.suffix == ".json" and path.stem not in keep):
            path.unlink(missing_ok=True)


def _scan_all(todo, folder, access, settings, connections, head_bytes, on_error, progress):
    """Requests in a thread pool, parsing here: each file's scan advances whenever the
    bytes it waits for arrive (its head, the values it loads, or layout found further on)."""
    results: dict[str, Scanned] = {}
    started = {s.file_id: time.perf_counter() for s in todo}
    restarts: dict[str, int] = {}
    steps: dict[str, Generator] = {}
    arrived: queue.SimpleQueue[tuple[Future, Source]] = queue.SimpleQueue()
    with ThreadPoolExecutor(max_workers=max(1, connections)) as pool:

        def submit(source: Source, fn: Callable, *args: Any) -> None:
            # A queue of finished work, not wait() on all pending: that costs O(pending)
            # per call. A local file has nothing to wait for: its work runs here.
            if source.url.startswith("file://"):
                arrived.put((_run_now(fn, *args), source))
            else:
                pool.submit(fn, *args).add_done_callback(lambda f: arrived.put((f, source)))

        for s in todo:
            submit(s, open_source, s.url, access, head_bytes)
        in_flight = len(todo)
        while in_flight:
            future, source = arrived.get()
            in_flight -= 1
            try:
                with _as_scan_error(source.url, access):
                    opened = future.result()
                    if source.file_id not in steps:
                        if opened.reader is not None:  # fetch outside the parse (h5py's lock)
                            opened.reader.may_fetch = restarts.get(source.file_id, 0) >= MAX_ROUNDS
                        steps[source.file_id] = parse(opened, settings["inline_threshold"])
                    ranges = next(steps[source.file_id])
                    submit(source, _prefetch, opened, ranges)
                    in_flight += 1
                    continue
            except StopIteration as finished:
                manifest = finished.value
            except NeedBytes as need:  # layout beyond the head: fetch it, parse again
                steps.pop(source.file_id, None)
                restarts[source.file_id] = restarts.get(source.file_id, 0) + 1
                submit(source, _refetch, opened, need)
                in_flight += 1
                continue
            except ScanError as exc:
                reason = str(exc).removeprefix(f"{source.url}: ")
                results[source.file_id] = _skipped(source, reason, on_error)
                continue
            steps.pop(source.file_id)
            pause("scan:parsed")
            try:
                identity = scanned_version(opened)
            except ScanError as exc:
                reason = str(exc).removeprefix(f"{source.url}: ")
                results[source.file_id] = _skipped(source, reason, on_error)
                continue
            seconds = time.perf_counter() - started[source.file_id]
            row = _write(manifest, identity, opened, source, folder, settings, seconds)
            results[source.file_id] = row
            pause("scan:manifest")
            if progress:
                progress(len(results), len(todo))
    return results


def _run_now(fn: Callable, *args: Any) -> Future:
    done: Future = Future()
    try:
        done.set_result(fn(*args))
    except Exception as exc:  # noqa: BLE001 - delivered as a thread's would be
        done.set_exception(exc)
    return done


def _prefetch(opened: Opened, ranges: Ranges) -> Opened:
    if opened.reader is not None:
        opened.reader.prefetch(ranges)
    return opened


def _refetch(opened: Opened, need: NeedBytes) -> Opened:
    need.fetch()
    return opened


def _write(manifest, identity, opened, source, folder: Path, settings, seconds) -> Scanned:
    cost = opened.cost()
    manifest.identity = identity
    manifest.scan = {
        "settings": settings,
        "variables": len(manifest.variables),
        "references": manifest.references,
        **cost,
    }
    path = folder / f"{source.file_id}.json"
    digest = write_manifest(manifest, path)
    row = Scanned(
        file_id=source.file_id,
        url=source.url,
        manifest=path.name,
        sha256=digest,
        variables=len(manifest.variables),
        references=manifest.references,
        seconds=round(seconds, 4),
        **identity,
        **cost,
    )
    for note in manifest.notes:
        log.info("%s: %s", source.file_id, note)
    return row
