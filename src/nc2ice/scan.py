"""Scan one source file into a manifest: sniff the format, parse the layout, write atomically."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import obstore
from obspec_utils.readers import BlockStoreReader
from obstore.exceptions import BaseError as ObstoreError

from nc2ice.access import Access, prefix_of
from nc2ice.errors import AccessError, ScanError
from nc2ice.formats.hdf5 import scan_hdf5
from nc2ice.formats.netcdf3 import scan_netcdf3
from nc2ice.manifest import Manifest, write_manifest

log = logging.getLogger(__name__)

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
HDF5_USERBLOCK_OFFSETS = (0, 512, 1024, 2048, 4096)


@dataclass
class ScanResult:
    url: str
    path: str
    variables: int
    chunks: int
    loaded: int
    digest: str
    seconds: float
    notes: list[str]


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


def scan_file(url: str, access: Access, *, size: int | None = None, inline_limit: int) -> Manifest:
    store = access.object_store(prefix_of(url))
    path = access.path_in_store(url)
    try:
        size = access.head(url)["size"] if size is None else size
        reader = BlockStoreReader(store, path, block_size=1 << 20)
        head = _first_bytes(reader, store, path) if size else b""
        later = {}
        if not head.startswith(HDF5_MAGIC) and size > 512:
            for offset in HDF5_USERBLOCK_OFFSETS[1:]:
                if offset + 8 <= size:
                    reader.seek(offset)
                    later[offset] = reader.read(8)
        kind = sniff(head, later)
        reader.seek(0)
        if kind == "hdf5":
            return scan_hdf5(url, reader, inline_limit)
        return scan_netcdf3(url, reader, size, inline_limit)
    # Faults of the file or its server become a ScanError (which `on_error: skip` may skip);
    # anything else is a bug of ours and keeps its traceback.
    except (ScanError, AccessError) as exc:
        message = str(exc)  # AccessError already names the URL
        raise ScanError(message if message.startswith(url) else f"{url}: {message}") from exc
    except (ObstoreError, FileNotFoundError) as exc:
        raise ScanError(access.error(url, exc).args[0]) from exc
    except OSError as exc:  # h5py's error for a truncated or corrupt file, or a failed read
        raise ScanError(f"{url}: cannot read as {_kind_or_file(exc)} ({_first_line(exc)})") from exc


def _first_bytes(reader: BlockStoreReader, store: Any, path: str) -> bytes:
    try:
        return reader.read(8)
    except Exception as exc:
        if "Range request not supported" not in str(exc):
            raise
    # A server that ignores Range often sends an error page; say what it sent.
    head = bytes(next(iter(obstore.get(store, path).stream(min_chunk_size=64)), b""))[:64]
    sniff(head)
    raise ScanError("the server does not answer HTTP Range requests, which reading needs")


def _kind_or_file(exc: BaseException) -> str:
    return "HDF5 (truncated or corrupt?)" if "signature" not in str(exc) else "HDF5"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def scan_to_file(
    url: str, out: str | Path, access: Access, *, size: int | None = None, inline_limit: int
) -> ScanResult:
    start = time.perf_counter()
    manifest = scan_file(url, access, size=size, inline_limit=inline_limit)
    digest = write_manifest(manifest, out)
    result = ScanResult(
        url=url,
        path=str(out),
        variables=len(manifest.variables),
        chunks=sum(len(v.refs) for v in manifest.variables.values()),
        loaded=sum(v.loaded for v in manifest.variables.values()),
        digest=digest,
        seconds=time.perf_counter() - start,
        notes=manifest.notes,
    )
    log.info(
        "%s: %d variables (%d loaded), %d chunk references, %.2f s",
        url,
        result.variables,
        result.loaded,
        result.chunks,
        result.seconds,
    )
    for note in manifest.notes:
        log.warning("%s: %s", url, note)
    return result
