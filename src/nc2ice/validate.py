"""Reopen a snapshot as a reader would and compare it with direct reads of the sources.

The store is opened from its URL alone (the containers it records, anonymous or environment
credentials) by xarray, as ``xr.open_zarr`` opens it.  Each compared source file is read by
netCDF-C, the reference reader, on its own path, or from its bytes fetched in one request for
a remote file (h5netcdf over large blocks for files too large for that, and for filters
netCDF-C lacks), and decoded by xarray's CF decoding: a mistake in scanning, combining or
writing shows up as a mismatch here.  Values, dtypes and attributes are compared exactly:
where a store cannot give what netCDF readers give (a packed float32 variable decodes to
float64 from Zarr), the commit declares it, and the values are compared decoded in the
store's type.

A validation compares what changed since the dataset's last validated snapshot (the plan in
``commit.json``: ``nc2ice.checkplan``), in parts that run as jobs of their own; the store's
side of a part is read in a few calls (the sampled chunks of every file at once, each
coordinate once), the sources' side one file after the other (several at once over a
network).  ``combine`` joins the parts' verdicts.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hdf5plugin
import numpy as np
import xarray as xr

from nc2ice import checkplan
from nc2ice.access import Access, local_path
from nc2ice.encoding import MEANING_ATTRS, convert_units, same_units
from nc2ice.errors import AccessError
from nc2ice.faults import pause
from nc2ice.logs import Progress
from nc2ice.reading import open_store_dataset
from nc2ice.verdict import Validation, combine, compare_all, start

# netCDF-C finds HDF5 filters (LZ4, Zstd, ...) through this path, as h5py does through hdf5plugin.
os.environ.setdefault("HDF5_PLUGIN_PATH", hdf5plugin.PLUGIN_PATH)

log = logging.getLogger(__name__)
FULL_COMPARE_BYTES = 8 << 20  # values stored in the store up to this size are compared whole
STORE_BYTES = 256 << 20  # the store's side of a group of files held at once
WHOLE_FILE_BYTES = 32 << 20  # remote files up to this size are fetched in one request
# Attributes that netCDF readers turn into decoding (xarray moves them to .encoding).
DECODING_ATTRS = {"_FillValue", "missing_value", "scale_factor", "add_offset", "units", "calendar"}


@dataclass
class Meaning:
    """What the commit did about attributes that change what values mean."""

    converted: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> file -> units
    accepted: set[str] = field(default_factory=set)  # attributes the config lets differ
    declared: dict[str, dict[str, str]] = field(default_factory=dict)  # dtype differences

    @classmethod
    def of(cls, report: dict[str, Any]) -> Meaning:
        return cls(
            converted=report.get("units_converted", {}),
            accepted=set(report.get("accepted_differences", [])),
            declared=report.get("dtype_differences", {}),
        )


# -- the whole validation, and its parts ---------------------------------------------------------


def validate(
    commit: dict[str, Any], access: Access, *, sample_chunks: int, workers: int = 1
) -> Validation:
    """Every part of the commit's plan in this process, combined (tests, small datasets)."""
    plan = commit.get("validation_plan") or compare_all(commit)
    parts = [
        validate_part(commit, files, access, sample_chunks=sample_chunks, workers=workers)
        for files in plan["parts"]
    ]
    return combine(commit, [p.to_dict() for p in parts])


def validate_part(
    commit: dict[str, Any],
    files: list[str],
    access: Access,
    *,
    sample_chunks: int,
    workers: int = 1,
    quicklook: str | None = None,
) -> Validation:
    """Compare ``files`` with their pieces of the commit's snapshot."""
    result = start(commit)
    entries = [f for f in commit["files"] if f["file_id"] in set(files)]
    # reads of the sources see the versions the scan recorded, or fail ("changed while...")
    access = access.pinned({f["url"]: f["version"] for f in entries if f.get("version")})
    pause("validate:reading")
    first = commit["files"][0]["file_id"] if commit["files"] else None
    progress = Progress(f"{commit['dataset']}: files compared", len(entries))
    result.changed_sources = _changed_locally(entries)
    for group in commit.get("groups", [""]):
        part = _Part(commit, group, access, sample_chunks, result)
        part.run(entries, first, workers, progress if not group else None)
        if quicklook and not group:
            part.save_quicklook(quicklook)
    result.variables_checked = sorted(set(result.variables_checked))
    result.files_compared = [f["file_id"] for f in entries]
    return result


def _changed_locally(entries: list[dict[str, Any]]) -> dict[str, str]:
    """Local files whose size or modification time is not what the scan recorded (remote
    files say so when read: every read is tied to the recorded version)."""
    from nc2ice.access import differences, local_identity

    found = {}
    for entry in entries:
        if not entry["url"].startswith("file://") or not entry.get("version"):
            continue
        try:
            now = local_identity(local_path(entry["url"]))
        except OSError as exc:  # gone for a moment, or for good: the next listing tells
            raise _unreadable_error(entry["url"], exc.strerror or str(exc)) from None
        if what := differences(entry["version"], now):
            found[entry["file_id"]] = what
    return found


# -- one group of one part: the store read in bulk, the sources one after the other ---------------

# What xarray turns into decoding: files whose raw numbers and these attributes are the
# store's read back as the store does, without decoding either side.
DECODES = ("_FillValue", "missing_value", "scale_factor", "add_offset", "_Unsigned")
TIME_DECODES = ("units", "calendar")


class _Part:
    """The files of one part against one group of the snapshot.  The store's side is read
    raw (undecoded, as stored), a few calls for all the files; each file's raw numbers and
    decoding attributes are compared with it, which proves they decode alike.  Variables the
    commit re-encoded (times in other units, packing decoded, units converted) are compared
    decoded, as xarray decodes both sides."""

    def __init__(
        self,
        commit: dict[str, Any],
        group: str,
        access: Access,
        sample_chunks: int,
        result: Validation,
    ):
        self.commit, self.group, self.access, self.result = commit, group, access, result
        self.sample_chunks = sample_chunks
        self.concat_dim = commit["concat_dim"]
        report = commit.get("report", {})
        self.meaning = Meaning.of(report)
        self.inside = "/".join(p for p in (commit.get("group", ""), group) if p)
        self.store = open_store_dataset(
            commit["store"], access, self.inside, commit["snapshot"], decode=False
        )
        self.reencoded = {
            name for name in self.store.variables if _path(group, name) in _reencoded(report)
        }
        self.decoded_store: xr.Dataset | None = None
        loaded = set(report.get("loaded_arrays", []))
        # Values the store holds (not references), and small variables that do not run along
        # the files, are read whole once; references of each file are sampled.
        self.whole = {
            name
            for name, var in self.store.variables.items()
            if _path(group, name) in loaded
            or (
                self.concat_dim not in var.dims
                and var.size * var.dtype.itemsize <= FULL_COMPARE_BYTES
            )
        }
        self.values: dict[str, dict[str, list[tuple[tuple[slice, ...], np.ndarray]]]] = {}
        self.cache: dict[tuple[str, bool], np.ndarray] = {}  # whole variables, raw or decoded
        self.quick: dict[str, Any] = {}

    def run(self, entries: list[dict[str, Any]], first: str | None, workers: int, progress) -> None:
        """A group of files at a time, in two stages: one thread fetches the next group's
        sources and reads its side of the store while this thread compares the group before
        (over a network half the connections fetch sources, half read the store)."""
        todo = [e for e in entries if e["file_id"] not in self.result.changed_sources]
        remote = any(not e["url"].startswith("file://") for e in todo)
        fetchers = max(1, workers // 2) if remote else 1
        self.overlap = not remote or workers >= 2  # one connection: one request at a time
        groups = list(self._groups(todo, 8 * fetchers if remote else 256))
        with ThreadPoolExecutor(fetchers) as pool, ThreadPoolExecutor(1) as stage:
            ahead = stage.submit(self._prepare, groups[0], pool) if groups else None
            for n, group in enumerate(groups):
                fetched, wanted, values = ahead.result()
                if n + 1 < len(groups):
                    ahead = stage.submit(self._prepare, groups[n + 1], pool)
                self.values = values
                for entry, data in fetched:
                    if entry["file_id"] in values:
                        is_first = entry["file_id"] == first
                        self._check_file(entry, data, wanted[entry["file_id"]], is_first)
                for _ in group:
                    if progress:
                        progress.advance()

    def _prepare(self, group: list[dict[str, Any]], pool: ThreadPoolExecutor):
        """A group's sources fetched and its side of the store read, at the same time; a
        file changed since its scan is named as such, not compared."""
        coming = [pool.submit(self._fetch, e) for e in group]
        if not self.overlap:
            coming = [_done(f.result()) for f in coming]
        wanted = {e["file_id"]: self._selections(e) for e in group}
        values: dict[str, dict[str, list[tuple[tuple[slice, ...], np.ndarray]]]] = {}
        refused: dict[str, tuple[str, str]] = {}
        self._read_store(wanted, values, refused)
        fetched = [(e, d) for e, d in (f.result() for f in coming) if d is not _FAILED]
        for file_id, (path, said) in refused.items():
            if file_id not in self.result.changed_sources:
                self._mismatch({"file_id": file_id}, path, f"the store cannot read it: {said}")
        return fetched, wanted, values

    def _fetch(self, entry: dict[str, Any]) -> Any:
        try:
            return entry, _fetch(entry["url"], self.access)
        except AccessError as exc:
            self._unreadable(entry, exc)
            return entry, _FAILED

    def _unreadable(self, entry: dict[str, Any], exc: Exception) -> None:
        """Another version than the scan's: the verdict names it (and the next run, which
        sees the change, rescans it).  Not readable at all (gone, a server error): no
        verdict, and the run stops; its rerun validates again, or its listing says the file
        is gone."""
        what = str(exc).removeprefix(f"{entry['url']}: ")
        if "changed" in what:
            self.result.changed_sources[entry["file_id"]] = what
            return
        raise _unreadable_error(entry["url"], what)

    def _groups(self, entries: list[dict[str, Any]], most: int) -> Iterator[list[dict[str, Any]]]:
        """Files a few at a time (at most ``most``), so that the store's side of them stays
        within STORE_BYTES in memory."""
        per_file = sum(
            _sampled_bytes(var, self.concat_dim, self.sample_chunks)
            for name, var in self.store.variables.items()
            if name not in self.whole
        )
        size = max(1, min(most, STORE_BYTES // max(1, per_file)))
        for i in range(0, len(entries), size):
            yield entries[i : i + size]

    def _check_file(self, entry, data: Any, wanted, first: bool) -> None:
        source = self._open(entry, data)
        if source is None:
            return
        result, before = self.result, _counts(self.result)
        try:
            self._check(entry, source, first)
        except _NeedsH5 as need:  # a filter netCDF-C lacks (LZF): h5py has it
            _restore(result, before)  # what the first reader compared is compared again
            source.close()
            source = self._open(entry, data, h5=True)
            if source is not None:
                self._check(entry, source, first)
            log.info("%s: read by h5netcdf (%s)", entry["file_id"], need)
        finally:
            if source is not None:
                source.close()

    def _open(self, entry: dict[str, Any], data: Any, h5: bool = False) -> Source | None:
        try:
            return Source.open(entry["url"], data, self.access, self.group or None, h5=h5)
        except AccessError as exc:
            self._unreadable(entry, exc)
            return None

    # -- what is compared -------------------------------------------------------------------

    def _selections(self, entry: dict[str, Any]) -> dict[str, list[tuple[slice, ...]]]:
        """Per variable, the regions of the store compared with this file: all of it for
        values the store holds, else ``sample_chunks`` of its chunks, chosen anew for each
        snapshot."""
        out = {}
        start, length = entry["start"], entry["length"]
        for name, var in self.store.variables.items():
            along = self.concat_dim in var.dims
            full = tuple(
                slice(start, start + length) if d == self.concat_dim else slice(0, n)
                for d, n in zip(var.dims, var.shape, strict=True)
            )
            if name in self.whole or not var.dims:
                out[name] = [full]
                continue
            chunks = var.encoding.get("preferred_chunks") or {}
            sizes = [max(1, chunks.get(d, n) or 1) for d, n in zip(var.dims, var.shape)]
            ranges = [_chunk_ranges(s.start, s.stop, c) for s, c in zip(full, sizes, strict=True)]
            key = f"{entry['file_id']}/{self.commit['snapshot']}/{_path(self.group, name)}"
            count = math.prod(len(r) for r in ranges)
            picks = checkplan.sampled(key, count, max(1, self.sample_chunks) if along else 1)
            out[name] = [_region(ranges, pick) for pick in picks]
        return out

    def _read_store(self, wanted, into, refused) -> None:
        """The store's side of every file at once: each value-holding variable whole, each
        referenced one in one call per tile (its chunks fetched concurrently)."""
        for name, var in self._views():
            decoded = name in self.reencoded
            if name in self.whole or not var.dims:
                if (name, decoded) not in self.cache:  # once, whatever the number of files
                    try:
                        self.cache[name, decoded] = var.values
                    except Exception as exc:  # noqa: BLE001 - a chunk the store cannot decode
                        said = (_path(self.group, name), _said(exc))
                        refused.update(dict.fromkeys(wanted, said))
                        continue
                for file_id, regions in wanted.items():
                    for region in regions.get(name, []):
                        block = self.cache[name, decoded][region]
                        _got(into, file_id, name, region, block)
                continue
            by_tile: dict[tuple, list[tuple[str, tuple[slice, ...]]]] = defaultdict(list)
            for file_id, regions in wanted.items():
                for region in regions[name]:
                    by_tile[tuple((s.start, s.stop) for s in region[1:])].append((file_id, region))
            for tile, items in by_tile.items():
                self._read_tile(name, var, tile, items, into, refused)

    def _views(self) -> Iterator[tuple[str, xr.Variable]]:
        """Each variable as it is compared: raw, or decoded where the commit re-encoded it."""
        if self.reencoded and self.decoded_store is None:
            self.decoded_store = open_store_dataset(
                self.commit["store"], self.access, self.inside, self.commit["snapshot"]
            )
        for name, var in self.store.variables.items():
            yield name, (self.decoded_store.variables[name] if name in self.reencoded else var)

    def _read_tile(self, name: str, var: xr.Variable, tile, items, into, refused) -> None:
        """One call for the chunks of every file in one tile, fetched concurrently; if the
        store refuses one (its source changed, a chunk it cannot decode), each file's
        again, to name the files it refuses."""
        steps = np.concatenate([np.arange(r[0].start, r[0].stop) for _, r in items])
        where = _tile(var.dims[1:], tile)
        try:
            picked = var.isel({var.dims[0]: steps, **where}).values
        except Exception as exc:  # noqa: BLE001 - what the store says is the finding
            if len(items) == 1:
                refused[items[0][0]] = (_path(self.group, name), _said(exc))
                into.pop(items[0][0], None)
                return
            for item in items:
                self._read_tile(name, var, tile, [item], into, refused)
            return
        at = 0
        for file_id, region in items:
            n = region[0].stop - region[0].start
            _got(into, file_id, name, region, picked[at : at + n])
            at += n

    # -- one source file --------------------------------------------------------------------

    def _check(self, entry, source: Source, first: bool) -> None:
        file_id = entry["file_id"]
        if first:
            self._attributes(entry, "", self.store.attrs, source.global_attrs())
        for name in self.store.variables:
            if name not in source.names and _path(self.group, name) not in self.result.not_in_store:
                detail = "in the store but not in the source file"
                self._mismatch(entry, _path(self.group, name), detail)
        for name in source.names:  # what the store lacks was left out on purpose, and said
            path = _path(self.group, name)
            if name not in self.store.variables and path not in self.result.not_in_store:
                self._mismatch(entry, path, "in the source file but not in the store")
        names = [n for n in self.store.variables if n in source.names]
        try:
            attrs = {n: source.attrs(n) for n in names}
            _inherit_time(attrs)
            decoded = self._decoded(entry, source, [n for n in names if n in self.reencoded])
        except AccessError as exc:
            self.result.changed_sources[file_id] = str(exc).removeprefix(f"{entry['url']}: ")
            return
        for name in names:
            path = _path(self.group, name)
            svar = self.store.variables[name]
            if first:
                self._attributes(entry, path, _shown(svar.attrs), _shown(attrs[name]))
            self._meaning(entry, path, svar, attrs[name], name in self.reencoded)
            self.result.variables_checked.append(path)
            shape = tuple(
                entry["length"] if d == self.concat_dim else n
                for d, n in zip(svar.dims, svar.shape, strict=True)
            )
            if shape != source.shape(name):
                detail = f"shape {shape} in the store, {source.shape(name)} in the source"
                self._mismatch(entry, path, detail)
                continue
            if name in self.reencoded:
                self._compare_decoded(entry, path, name, decoded[name])
            else:
                self._compare_raw(entry, path, name, source, attrs[name])

    def _decoded(self, entry, source: Source, names: list[str]) -> dict[str, list[np.ndarray]]:
        regions = {n: [r for r, _ in self.values[entry["file_id"]].get(n, [])] for n in names}
        return source.decoded(regions, self.concat_dim, entry["start"]) if names else {}

    def _compare_raw(self, entry, path: str, name: str, source: Source, attrs: dict) -> None:
        """Raw numbers as stored, and the attributes that decode them, alike: the two
        decode alike."""
        svar = self.store.variables[name]
        if path in self.meaning.declared:  # decodes to another float type, as declared
            self.result.dtype_differences[path] = self.meaning.declared[path]
        decodes = DECODES + (TIME_DECODES if _is_time(svar.attrs) else ())
        for key in decodes:
            got, want = svar.attrs.get(key), attrs.get(key)
            if (got is None and want is None) or _same_number(got, want):
                continue
            detail = f"{key} is {got!r} in the store but {want!r} in the source"
            self._mismatch(entry, path, detail)
        for region, stored in self.values[entry["file_id"]][name]:
            raw = source.raw(name, _local(region, svar.dims, self.concat_dim, entry["start"]))
            if raw.dtype != stored.dtype and not (
                raw.dtype.kind in "SUO" or stored.dtype.kind in "SUO"
            ):
                detail = f"dtype {stored.dtype} in the store, {raw.dtype} in the source"
                self._mismatch(entry, path, detail)
                return
            self._compare(entry, path, region, stored, raw)
            self._quicklook(entry, name, svar, region, stored, raw)

    def _compare_decoded(self, entry, path: str, name: str, wants: list[np.ndarray]) -> None:
        svar = self.store.variables[name]
        for (region, stored), want in zip(self.values[entry["file_id"]][name], wants, strict=True):
            want = self._wanted(entry, path, want, stored.dtype)
            if want is None:
                return
            self._compare(entry, path, region, stored, want)
            self._quicklook(entry, name, svar, region, stored, want)

    def _wanted(self, entry, path: str, want: np.ndarray, dtype: np.dtype):
        """The source's values as the store must give them: converted to the first file's
        units, in the store's type where the commit declared it (decoded packing)."""
        converted = self.meaning.converted.get(path)
        if converted:
            values = want.astype(dtype)
            units, target = converted.get(entry["file_id"]), next(iter(converted.values()))
            if units is None or same_units(units, target):
                return values
            return convert_units(values, units, target)
        if want.dtype == dtype or _dates_both(want.dtype, dtype) or want.dtype.kind == "f":
            return want.astype(dtype) if want.dtype.kind == "f" else want
        self._mismatch(entry, path, f"dtype {dtype} in the store, {want.dtype} in the source")
        return None

    def _compare(self, entry, path: str, region, got: np.ndarray, want: np.ndarray) -> None:
        self.result.chunks_checked += 1
        self.result.values_compared += int(np.size(want))
        if _equal(got, want):
            return
        where = ", ".join(f"{s.start}:{s.stop}" for s in region)
        self._mismatch(entry, path, f"values differ in [{where}]: {_first_difference(got, want)}")

    def _meaning(self, entry, path: str, svar: xr.Variable, attrs: dict, reencoded: bool) -> None:
        """Every file's attributes that change what its numbers mean agree with the store's
        (units compared as units), except where the commit re-encoded times, converted
        units, or the config accepts a difference."""
        skip = set(self.meaning.accepted)
        if reencoded or _is_time(svar.attrs):
            skip |= {"units", "calendar"}  # compared with the raw numbers, or re-encoded
        else:
            skip.add("calendar")  # says nothing about numbers that are not times (as the commit)
        for key in MEANING_ATTRS:
            if key in skip:
                continue
            got, want = svar.attrs.get(key), attrs.get(key)
            same = same_units(got, want) if key == "units" else _same_number(got, want)
            if (got is None and want is None) or same:
                continue
            self.result.attributes_compared += 1
            self._mismatch(entry, path, f"{key} is {got!r} in the store but {want!r} in the source")

    def _attributes(self, entry, path: str, got: dict[str, Any], want: dict[str, Any]) -> None:
        """The store keeps the first file's attributes: every one of them, as it has them."""
        where = path or "the global attributes"
        for key in sorted(set(got) | set(want)):
            if key in DECODING_ATTRS:
                continue
            self.result.attributes_compared += 1
            if key not in got or key not in want:
                side = "store" if key not in got else "source"
                self._mismatch(entry, where, f"attribute {key!r} missing in the {side}")
            elif not same_attribute(got[key], want[key]):
                self._mismatch(
                    entry,
                    where,
                    f"attribute {key!r} is {got[key]!r} in the store, {want[key]!r} in the source",
                )

    def _mismatch(self, entry, path: str, detail: str) -> None:
        file_id = entry["file_id"]
        log.error("%s in %s: %s", path or "the file", file_id, detail)
        self.result.mismatches.append({"variable": path, "file": file_id, "detail": detail})

    # -- quicklooks: what the report draws, from values already read ------------------------

    def _quicklook(self, entry, name: str, svar, region, stored, source) -> None:
        """Data variables only: not coordinates, their bounds, or times."""
        if name in self.quick or svar.ndim == 0 or stored.dtype.kind not in "iuf":
            return
        if svar.dims == (name,) or _is_time(svar.attrs) or name in self._bounds():
            return
        decoded = {}
        if name not in self.reencoded:  # raw numbers: masked and scaled as a reader sees them
            attrs = {k: svar.attrs[k] for k in DECODES if k in svar.attrs}
            decoded = {"store": _masked(stored, attrs), "source": _masked(source, attrs)}
        self.quick[name] = {
            "file_id": entry["file_id"],
            "region": region,
            "store": decoded.get("store", stored),
            "source": decoded.get("source", source),
        }

    def _bounds(self) -> set[str]:
        return {
            str(v.attrs[k])
            for v in self.store.variables.values()
            for k in ("bounds", "climatology")
            if k in v.attrs
        }

    def save_quicklook(self, path: str) -> None:
        """The first compared field of each variable (store and source), for the report."""
        arrays = {f"{name}::store": q["store"] for name, q in self.quick.items()}
        arrays.update({f"{name}::source": q["source"] for name, q in self.quick.items()})
        meta = {
            name: {
                "file_id": q["file_id"],
                "region": [[s.start, s.stop] for s in q["region"]],
                "dims": list(self.store.variables[name].dims),
                "attrs": {
                    k: str(v)
                    for k, v in self.store.variables[name].attrs.items()
                    if k in ("bounds", "climatology")
                },
            }
            for name, q in self.quick.items()
        }
        arrays["meta"] = np.array(repr(meta))
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)


def _done(value: Any) -> Future:
    done: Future = Future()
    done.set_result(value)
    return done


_COUNTS = ("chunks_checked", "values_compared", "attributes_compared")


def _counts(result: Validation) -> tuple:
    return (*(getattr(result, k) for k in _COUNTS), len(result.mismatches))


def _restore(result: Validation, counts: tuple) -> None:
    for key, value in zip(_COUNTS, counts, strict=False):
        setattr(result, key, value)
    del result.mismatches[counts[-1] :]


def _said(exc: BaseException) -> str:
    """The last line of what the store said (Icechunk's errors are many lines long)."""
    lines = [line.strip(" `->|") for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]


def _got(into: dict, file_id: str, name: str, region, block: np.ndarray) -> None:
    into.setdefault(file_id, {}).setdefault(name, []).append((region, block))


def _reencoded(report: dict[str, Any]) -> set[str]:
    return set(report.get("reencoded", [])) | set(report.get("units_converted", {}))


def _is_time(attrs: dict[str, Any]) -> bool:
    return "since" in str(attrs.get("units", ""))


def _inherit_time(attrs: dict[str, dict[str, Any]]) -> None:
    """Time bounds read with their coordinate's units and calendar, as xarray reads them
    (and as the store holds them)."""
    for own in attrs.values():
        bounds = own.get("bounds")
        if _is_time(own) and bounds in attrs:
            for key in TIME_DECODES:
                if key in own and key not in attrs[bounds]:
                    attrs[bounds][key] = own[key]


def _shown(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes as a reader sees them: xarray takes a ``coordinates`` attribute as
    encoding, not as an attribute."""
    return {k: v for k, v in attrs.items() if k != "coordinates"}


def _same_number(a: Any, b: Any) -> bool:
    """Attributes that decode numbers: equal values (the width of a number is the store's
    declared business: ``dtype_differences``)."""
    a, b = np.asarray(_attr(a)), np.asarray(_attr(b))
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "SUO" or b.dtype.kind in "SUO":
        return [str(_text(x)) for x in a.ravel()] == [str(_text(x)) for x in b.ravel()]
    return bool(np.array_equal(a.astype("f8"), b.astype("f8"), equal_nan=True))


def _masked(values: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    out = values.astype("f8")
    for key in ("_FillValue", "missing_value"):
        if key in attrs:
            out[np.isin(values, np.atleast_1d(attrs[key]).astype(values.dtype))] = np.nan
    return out * float(attrs.get("scale_factor", 1.0)) + float(attrs.get("add_offset", 0.0))


def _local(region, dims, concat_dim: str, start: int) -> tuple[slice, ...]:
    """A region of the store in the coordinates of one file."""
    return tuple(
        slice(s.start - start, s.stop - start) if d == concat_dim else s
        for d, s in zip(dims, region, strict=True)
    )


_FAILED = object()  # a source that changed since its scan (named in the verdict)


def _unreadable_error(url: str, what: str) -> AccessError:
    return AccessError(
        f"{url}: cannot be read to validate it ({what}); nothing was published: run again "
        "(if the file is gone for good, the next listing says so)"
    )


class _NeedsH5(Exception):  # noqa: N818 - a request to read the file another way
    """netCDF-C lacks a filter the file uses."""


def _fetch(url: str, access: Access) -> bytes | None:
    """A remote file's bytes in one request tied to its recorded version (None for local
    files, read where they are, and for files too large to hold: read in blocks)."""
    if url.startswith("file://"):
        return None
    size = int((access.versions.get(url) or {}).get("size") or 0)
    if 0 < size <= WHOLE_FILE_BYTES:  # one request, tied to the version the scan recorded
        return access.get_ranges(url, [0], [size])[0]
    try:
        reader = access.reader(url, head_bytes=WHOLE_FILE_BYTES, block_bytes=4 << 20)
        if reader.length() > WHOLE_FILE_BYTES:
            return None
        reader.seek(0)
        return reader.read()
    except AccessError:
        raise
    except Exception as exc:  # noqa: BLE001 - obstore raises several types
        raise access.error(url, exc) from None


def _is_hdf5(url: str, data: bytes | None) -> bool:
    head = data[:8] if data is not None else local_path(url).open("rb").read(8)
    return head.startswith(b"\x89HDF")


def _sampled_bytes(var: xr.Variable, concat_dim: str, k: int) -> int:
    """What the store's side of one file costs in memory for ``var``."""
    chunks = var.encoding.get("preferred_chunks") or {}
    sizes = [chunks.get(d, n) or 1 for d, n in zip(var.dims, var.shape, strict=True)]
    per_chunk = math.prod(sizes) * var.dtype.itemsize
    return per_chunk * (max(1, k) if concat_dim in var.dims else 1)


def _path(group: str, name: str) -> str:
    return f"{group}/{name}".lstrip("/")


def _chunk_ranges(start: int, stop: int, size: int) -> list[tuple[int, int]]:
    """The chunk-aligned pieces of [start, stop) on a grid of ``size``."""
    if stop <= start:
        return [(start, start)]
    first = start - start % size
    return [(max(a, start), min(a + size, stop)) for a in range(first, stop, size)]


def _region(ranges: list[list[tuple[int, int]]], pick: int) -> tuple[slice, ...]:
    """The ``pick``-th chunk (C order) of a grid of per-axis ranges."""
    out = []
    for axis in reversed(ranges):
        pick, i = divmod(pick, len(axis))
        out.append(slice(*axis[i]))
    return tuple(reversed(out))


def _tile(dims: tuple[str, ...], tile: tuple[tuple[int, int], ...]) -> dict[str, slice]:
    return {d: slice(a, b) for d, (a, b) in zip(dims, tile, strict=True)}


# -- a source file, read by netCDF-C and decoded as xarray decodes ------------------------------


class Source:
    """One source file, read by netCDF-C (local files by path, remote ones from their bytes,
    fetched in one request, tied to the version the scan recorded), or by h5netcdf where
    netCDF-C cannot (a filter it lacks, files too large to fetch whole)."""

    def __init__(self, handle: Any, names: list[str], close: Any, h5: bool = False):
        self.handle, self.names, self._close, self.h5 = handle, names, close, h5

    @classmethod
    def open(
        cls, url: str, data: bytes | None, access: Access, group: str | None, h5: bool = False
    ) -> Source:
        """``data``: a remote file's bytes (``_fetch``), or None to read it where it is."""
        import netCDF4

        if not h5 and data is None and not url.startswith("file://"):  # too large to fetch
            reader = access.reader(url, block_bytes=4 << 20)
            if reader.read(4)[:3] == b"CDF":
                return cls._large_netcdf3(url, access, group)
            return cls._h5netcdf(reader, group)
        if h5:
            where = local_path(url) if data is None else io.BytesIO(data)
            return cls._h5netcdf(where, group)
        try:
            if data is None:
                nc = netCDF4.Dataset(local_path(url))
            else:
                nc = netCDF4.Dataset("source.nc", memory=data)
        except OSError as exc:  # HDF5 netCDF-C refuses (references, odd links): h5netcdf
            if not _is_hdf5(url, data):
                raise AccessError(f"{url}: netCDF-C cannot open it ({exc})") from None
            return cls.open(url, data, access, group, h5=True)
        handle = nc[group] if group else nc
        return cls(handle, list(handle.variables), nc.close)

    @classmethod
    def _large_netcdf3(cls, url: str, access: Access, group: str | None) -> Source:
        """netCDF-C reads HTTP byte ranges itself; S3 objects, whose requests it cannot
        sign, through a temporary copy."""
        import netCDF4

        if url.startswith(("http://", "https://")):
            nc = netCDF4.Dataset(f"{url}#mode=bytes")
            return cls(nc, list(nc.variables), nc.close)
        folder = tempfile.TemporaryDirectory(prefix="nc2ice-validate-")
        copy = Path(folder.name) / "source.nc"
        copy.write_bytes(access.get_ranges(url, [0], [access.head(url)["size"]])[0])
        nc = netCDF4.Dataset(copy)

        def close() -> None:
            nc.close()
            folder.cleanup()

        return cls(nc, list(nc.variables), close)

    @classmethod
    def _h5netcdf(cls, fileobj: Any, group: str | None) -> Source:
        ds = xr.open_dataset(
            fileobj, engine="h5netcdf", group=group, phony_dims="sort", decode_cf=False
        )
        return cls(ds, list(ds.variables), ds.close, h5=True)

    def close(self) -> None:
        self._close()

    def global_attrs(self) -> dict[str, Any]:
        if self.h5:
            return dict(self.handle.attrs)
        return {k: self.handle.getncattr(k) for k in self.handle.ncattrs()}

    def attrs(self, name: str) -> dict[str, Any]:
        var = self.handle.variables[name]
        if self.h5:
            return dict(var.attrs)
        attrs = {k: var.getncattr(k) for k in var.ncattrs()}
        if getattr(var.dtype, "kind", "O") == "S" and "_FillValue" in attrs:  # as xarray does
            attrs["_FillValue"] = np.bytes_(attrs["_FillValue"])
        return attrs

    def dims(self, name: str) -> tuple[str, ...]:
        var = self.handle.variables[name]
        return tuple(var.dims if self.h5 else var.dimensions)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.handle.variables[name].shape)

    def raw(self, name: str, region: tuple[slice, ...]) -> np.ndarray:
        """Numbers as the file stores them (netCDF-C: no masking, scaling or joining of
        characters; xarray reads them so before it decodes)."""
        var = self.handle.variables[name]
        if self.h5:
            return np.asarray(var[region].values)
        var.set_auto_maskandscale(False)
        with contextlib.suppress(AttributeError):
            var.set_auto_chartostring(False)
        try:
            return np.asarray(var[region])
        except RuntimeError as exc:
            if "Filter error" in str(exc):
                raise _NeedsH5(str(exc)) from None
            raise

    def decoded(
        self, regions: dict[str, list[tuple[slice, ...]]], concat_dim: str, start: int
    ) -> dict[str, list[np.ndarray]]:
        """Each region of each variable (in the store's coordinates: shifted to the file's),
        decoded as ``xr.open_dataset`` decodes the file."""
        variables: dict[str, xr.Variable] = {}
        for name, wanted in regions.items():
            dims, attrs = self.dims(name), self.attrs(name)
            for n, region in enumerate(wanted):
                raw = self.raw(name, _local(region, dims, concat_dim, start))
                variables[f"{name}\0{n}"] = xr.Variable(dims, raw, dict(attrs))
        bounds = self._time_parents(regions)
        decoded, _, _ = xr.conventions.decode_cf_variables(
            {**bounds, **_with_bounds(variables, bounds)}, {}, decode_coords=False
        )
        out: dict[str, list[np.ndarray]] = {}
        for key in variables:
            out.setdefault(key.partition("\0")[0], []).append(np.asarray(decoded[key].values))
        return out

    def _time_parents(self, regions) -> dict[str, xr.Variable]:
        """Time coordinates whose bounds are decoded (their units decode the bounds)."""
        parents = {}
        for name in self.names:
            attrs = self.attrs(name)
            if attrs.get("bounds") in regions and _is_time(attrs):
                parents[f"{name}\0parent"] = xr.Variable((), 0, attrs)
        return parents


def _with_bounds(variables: dict[str, xr.Variable], parents: dict[str, xr.Variable]):
    """xarray gives time bounds their coordinate's units and calendar as it decodes: the
    same for regions keyed ``name\\0n``."""
    for parent in parents.values():
        bounds = parent.attrs["bounds"]
        for key, target in variables.items():
            if key.partition("\0")[0] == bounds:
                for attr in TIME_DECODES:
                    if attr in parent.attrs and attr not in target.attrs:
                        target.attrs[attr] = parent.attrs[attr]
    return variables


def decode_packed(raw: np.ndarray, attrs: dict[str, Any], dtype: np.dtype) -> np.ndarray:
    """Packed values decoded as xarray decodes them, but in ``dtype``: masked, then scaled."""
    values = raw.astype(dtype)
    for key in ("_FillValue", "missing_value"):
        if key in attrs:
            values[np.isin(raw, np.atleast_1d(attrs[key]))] = np.nan
    if "scale_factor" in attrs:
        values *= float(attrs["scale_factor"])
    if "add_offset" in attrs:
        values += float(attrs["add_offset"])
    return values


def same_attribute(a: Any, b: Any) -> bool:
    """Equal values of the same kind: numbers of the same numpy type, text, lists alike."""
    a, b = _attr(a), _attr(b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if type(a) is not type(b):
        return False
    if isinstance(a, float | np.floating) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.str_):
        return str(value)
    if isinstance(value, list | tuple):
        return np.asarray(value)
    return value


def _dates_both(a: np.dtype, b: np.dtype) -> bool:
    """One side decoded to numpy dates, the other to cftime dates: a store whose time runs
    past 2262 (or before 1678) decodes to cftime, each of its files within to numpy."""
    return {np.dtype(a).kind, np.dtype(b).kind} == {"M", "O"}


def _as_cftime(dates: np.ndarray, like: np.ndarray) -> np.ndarray:
    """numpy dates as cftime dates of the calendar of ``like``'s (NaT as None)."""
    import cftime

    sample = next((x for x in like.ravel() if isinstance(x, cftime.datetime)), None)
    if sample is None:
        return dates.astype(object)
    micro = dates.astype("datetime64[us]").astype(object)  # datetime.datetime, or None
    out = [
        None
        if d is None
        else cftime.datetime(*d.timetuple()[:6], d.microsecond, calendar=sample.calendar)
        for d in micro.ravel()
    ]
    return np.array(out, dtype=object).reshape(dates.shape)


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if _dates_both(a.dtype, b.dtype):
        a, b = (_as_cftime(a, b), b) if a.dtype.kind == "M" else (a, _as_cftime(b, a))
        return all(x == y or (_missing(x) and _missing(y)) for x, y in zip(a.ravel(), b.ravel()))
    if a.dtype.names or b.dtype.names:
        return a.dtype.names == b.dtype.names and all(_equal(a[n], b[n]) for n in a.dtype.names)
    if a.dtype.kind in "fcmM" and a.dtype == b.dtype:
        return bool(np.array_equal(a, b, equal_nan=True))
    if a.dtype.kind in "SUO" or b.dtype.kind in "SUO":
        return [str(_text(x)) for x in a.ravel()] == [str(_text(x)) for x in b.ravel()]
    return a.dtype == b.dtype and bool(np.array_equal(a, b))


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _text(x: Any) -> Any:
    return x.decode() if isinstance(x, bytes) else x


def _first_difference(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"shapes {a.shape} and {b.shape}"
    if a.dtype != b.dtype and not (a.dtype.kind in "SUO" or b.dtype.kind in "SUO"):
        return f"dtype {a.dtype} in the store, {b.dtype} in the source"
    flat_a, flat_b = a.ravel(), b.ravel()
    for i in range(flat_a.size):
        if not _equal(flat_a[i : i + 1], flat_b[i : i + 1]):
            return f"store {flat_a[i]!r} vs source {flat_b[i]!r} at flat index {i}"
    return "they differ"
