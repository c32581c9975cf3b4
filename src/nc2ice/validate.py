"""Reopen a store as a reader would and compare it with direct reads of the sources.

The store is opened from its URL alone (the containers it records, anonymous or environment
credentials), and each source file is opened with xarray through its own engine, so a
mistake in scanning, combining or writing shows up as a mismatch here.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from obspec_utils.readers import BlockStoreReader

from nc2ice.access import Access, local_path, prefix_of
from nc2ice.commit import BRANCH, open_repository

log = logging.getLogger(__name__)
FULL_COMPARE_BYTES = 8 << 20


@dataclass
class Validation:
    dataset: str
    store: str
    snapshot: str = ""
    variables_checked: list[str] = field(default_factory=list)
    chunks_checked: int = 0
    values_compared: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    not_in_store: dict[str, str] = field(default_factory=dict)
    what_commit_did: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.mismatches and bool(self.variables_checked)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, **self.__dict__}


def open_store_dataset(
    store_url: str, access: Access, group: str | None = None, snapshot: str | None = None
) -> xr.Dataset:
    """The store as a reader opens it: the branch tip, or one snapshot."""
    repo = open_repository(store_url, access)
    if snapshot:
        session = repo.readonly_session(snapshot_id=snapshot)
    else:
        session = repo.readonly_session(branch=BRANCH)
    return xr.open_zarr(session.store, consolidated=False, group=group or None, chunks=None)


def open_source(url: str, access: Access, group: str | None = None) -> xr.Dataset:
    """A source opened by the reference library where it can (local files: netCDF-C), else
    by h5netcdf or scipy over the same stores the scan used."""
    if url.startswith("file://"):
        return xr.open_dataset(local_path(url), engine="netcdf4", group=group)
    store = access.object_store(prefix_of(url))
    reader = BlockStoreReader(store, access.path_in_store(url), block_size=4 << 20)
    head = reader.read(4)
    reader.seek(0)
    if head[:3] == b"CDF":
        return xr.open_dataset(reader, engine="scipy", group=group)
    return xr.open_dataset(reader, engine="h5netcdf", group=group, phony_dims="access")


def validate(commit: dict[str, Any], access: Access, *, sample_chunks: int) -> Validation:
    result = Validation(
        dataset=commit["dataset"], store=commit["store"], snapshot=commit["snapshot"]
    )
    result.skipped_files = commit.get("skipped", [])
    report = commit.get("report", {})
    result.not_in_store = report.get("dropped_variables", {})
    result.what_commit_did = {
        key: report.get(key)
        for key in (
            "files_as_is",
            "files_split",
            "files_copied",
            "copied_bytes",
            "copied_why",
            "loaded_arrays",
            "grids",
            "notes",
        )
    }
    concat_dim = commit["concat_dim"]
    for group in commit.get("groups", [""]):
        store_ds = open_store_dataset(commit["store"], access, group, commit["snapshot"])
        for entry in commit["files"]:
            source = open_source(entry["url"], access, group or None)
            _compare_file(result, store_ds, source, entry, concat_dim, group, sample_chunks)
    result.variables_checked = sorted(set(result.variables_checked))
    return result


def _compare_file(result, store_ds, source, entry, concat_dim, group, sample_chunks) -> None:
    start, length = entry["start"], entry["length"]
    rng = random.Random(entry["file_id"])
    for name, svar in store_ds.variables.items():
        path = f"{group}/{name}".lstrip("/")
        if name not in source.variables:
            if path not in result.not_in_store:
                _mismatch(result, path, entry, "in the store but not in the source file")
            continue
        src = source.variables[name]
        if concat_dim in svar.dims:
            svar = svar.isel({concat_dim: slice(start, start + length)})
        # Variables without concat_dim come from the first file and are compared with every
        # file: one that differs elsewhere fails here instead of hiding in the store.
        result.variables_checked.append(path)
        if svar.shape != src.shape:
            _mismatch(
                result, path, entry, f"shape {svar.shape} in the store, {src.shape} in the source"
            )
            continue
        for selection in _selections(svar, sample_chunks, rng):
            _compare(result, path, entry, svar[selection].values, src[selection].values, selection)


def _selections(var: xr.Variable, k: int, rng: random.Random):
    """Everything for small variables; else the first, the last and k more chunks."""
    if var.size * var.dtype.itemsize <= FULL_COMPARE_BYTES or not var.dims:
        return [tuple(slice(None) for _ in var.dims)]
    chunks = var.encoding.get("preferred_chunks") or {}
    sizes = [chunks.get(d, n) or 1 for d, n in zip(var.dims, var.shape)]
    grid = [math.ceil(n / c) for n, c in zip(var.shape, sizes)]
    picks = {tuple(0 for _ in grid), tuple(g - 1 for g in grid)}
    while len(picks) < min(k + 2, math.prod(grid)):
        picks.add(tuple(rng.randrange(g) for g in grid))
    return [
        tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, sizes, var.shape))
        for index in sorted(picks)
    ]


def _compare(result, path, entry, got: np.ndarray, want: np.ndarray, selection) -> None:
    result.chunks_checked += 1
    result.values_compared += int(np.size(want))
    if _equal(got, want):
        return
    where = ", ".join(f"{s.start}:{s.stop}" for s in selection)
    _mismatch(result, path, entry, f"values differ in [{where}]: {_first_difference(got, want)}")


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        if a.dtype == b.dtype:
            return bool(np.array_equal(a, b, equal_nan=True))
        return bool(np.allclose(a, b, rtol=1e-6, atol=0, equal_nan=True))
    if a.dtype.kind == "M" and b.dtype.kind == "M":
        return bool(np.array_equal(a, b, equal_nan=True))
    if a.dtype.kind in "SUO" or b.dtype.kind in "SUO":
        return [str(_text(x)) for x in a.ravel()] == [str(_text(x)) for x in b.ravel()]
    return bool(np.array_equal(a, b))


def _text(x: Any) -> Any:
    return x.decode() if isinstance(x, bytes) else x


def _first_difference(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"shapes {a.shape} and {b.shape}"
    flat_a, flat_b = a.ravel(), b.ravel()
    for i in range(flat_a.size):
        if not _equal(flat_a[i : i + 1], flat_b[i : i + 1]):
            return f"store {flat_a[i]!r} vs source {flat_b[i]!r} at flat index {i}"
    return "dtypes differ"


def _mismatch(result: Validation, path: str, entry: dict | None, detail: str) -> None:
    file_id = entry["file_id"] if entry else ""
    log.error("%s in %s: %s", path, file_id, detail)
    result.mismatches.append({"variable": path, "file": file_id, "detail": detail})
