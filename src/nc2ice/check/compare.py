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
``commit.json``: ``nc2ice.store.trust``), in parts that run as jobs of their own; the store's
side of a part is read in a few calls (the sampled chunks of every file at once, each
coordinate once), the sources' side one file after the other (several at once over a
network).  ``combine`` joins the parts' verdicts.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import hdf5plugin
import numpy as np
import xarray as xr

from nc2ice.access import Access, local_path
from nc2ice.check.direct import TIME_DECODES, NeedsH5, Source, fetch, is_time, local_region
from nc2ice.check.equality import (
    dates_both,
    equal,
    first_difference,
    masked,
    same_attribute,
    same_number,
)
from nc2ice.check.verdict import Validation, combine, compare_all, start
from nc2ice.combine.encodings import MEANING_ATTRS, convert_units, same_units
from nc2ice.combine.fusion import disagreement
from nc2ice.errors import AccessError
from nc2ice.faults import pause
from nc2ice.logs import Progress
from nc2ice.scan.formats.hdf5 import why_not_kept
from nc2ice.store.open import open_store_dataset

# netCDF-C finds HDF5 filters (LZ4, Zstd, ...) through this path, as h5py does through hdf5plugin.
os.environ.setdefault("HDF5_PLUGIN_PATH", hdf5plugin.PLUGIN_PATH)

log = logging.getLogger(__name__)
FULL_COMPARE_BYTES = 8 << 20  # values stored in the store up to this size are compared whole
STORE_BYTES = 256 << 20  # the store's side of a group of files held at once
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
        # a fused dataset's parts: each file's dimension, variables and names (combine.fusion)
        self.fusion: dict[str, Any] = commit.get("fusion") or {}
        parts = self.fusion.get("parts", {}).values()
        self.along = {p["concat_dim"] for p in parts} or {self.concat_dim}
        self.firsts: dict[str, str] = {}  # each part's first file: its attributes are the store's
        for entry in commit["files"]:
            self.firsts.setdefault(entry.get("part", ""), entry["file_id"])
        self.first: str | None = None
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
                not self.along & set(var.dims)
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
        self.first = first
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
                        is_first = entry["file_id"] in self.firsts.values()
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
            return entry, fetch(entry["url"], self.access)
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
            _sampled_bytes(var, self._along(var), self.sample_chunks)
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
        except NeedsH5 as need:  # a filter netCDF-C lacks (LZF): h5py has it
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
        start, length, dim = entry["start"], entry["length"], self._dim(entry)
        for name in self._names(entry):
            var = self.store.variables[name]
            along = dim in var.dims
            full = tuple(
                slice(start, start + length) if d == dim else slice(0, n)
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
            picks = sampled(key, count, max(1, self.sample_chunks) if along else 1)
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
                for region in regions.get(name, []):
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
        """One file against the store's variables it holds (its part's, under their store
        names); ``first``: the first file of its part, whose attributes the store keeps."""
        file_id, dim = entry["file_id"], self._dim(entry)
        if file_id == self.first:  # with the attributes the config added (a file's own wins)
            added = self.commit.get("added_attributes", {}) if not self.group else {}
            want = {**added, **source.global_attrs()}
            self._attributes(entry, "", self.store.attrs, want)
        held = self._names(entry)
        own = {name: self._source_name(entry, name) for name in held}
        left_out = self._left_out(entry)
        for name in held:
            if own[name] not in source.names and _path(self.group, name) not in left_out:
                detail = "in the store but not in the source file"
                self._mismatch(entry, _path(self.group, name), detail)
        for source_name in source.names:  # what the store lacks was left out on purpose, and said
            name = self._store_name(entry, source_name)
            path = _path(self.group, name)
            if name not in held and path not in left_out:
                self._mismatch(entry, path, "in the source file but not in the store")
        names = [n for n in held if own[n] in source.names]
        try:
            attrs = {n: source.attrs(own[n]) for n in names}
            _inherit_time(attrs)
            recoded = [n for n in names if n in self.reencoded and not self._foreign(entry, n)]
            decoded = self._decoded(entry, source, recoded, own)
        except AccessError as exc:
            self.result.changed_sources[file_id] = str(exc).removeprefix(f"{entry['url']}: ")
            return
        for name in names:
            path = _path(self.group, name)
            svar = self.store.variables[name]
            self.result.variables_checked.append(path)
            if self._foreign(entry, name):
                self._compare_shared(entry, path, name, source, own[name], attrs[name])
                continue
            if first:
                self._attributes(entry, path, _shown(svar.attrs), _shown(attrs[name]))
            self._meaning(entry, path, svar, attrs[name], name in self.reencoded)
            shape = tuple(
                entry["length"] if d == dim else n
                for d, n in zip(svar.dims, svar.shape, strict=True)
            )
            if shape != source.shape(own[name]):
                detail = f"shape {shape} in the store, {source.shape(own[name])} in the source"
                self._mismatch(entry, path, detail)
                continue
            if name in self.reencoded:
                self._compare_decoded(entry, path, name, decoded[name])
            else:
                self._compare_raw(entry, path, name, source, attrs[name], own[name])

    # -- fused datasets: each file is of one part, which holds some of the store's variables --

    def _part(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The entry's part (``commit.json``'s ``fusion``); empty for a dataset of one."""
        return self.fusion.get("parts", {}).get(entry.get("part", ""), {})

    def _dim(self, entry: dict[str, Any]) -> str:
        return self._part(entry).get("concat_dim", self.concat_dim)

    def _along(self, var: xr.Variable) -> str:
        return next((d for d in var.dims if d in self.along), self.concat_dim)

    def _names(self, entry: dict[str, Any]) -> list[str]:
        """The store's variables (of this group) that the entry's file holds."""
        held = self._part(entry).get("variables")
        if held is None:
            return list(self.store.variables)
        paths = set(held)
        return [n for n in self.store.variables if _path(self.group, n) in paths]

    def _source_name(self, entry: dict[str, Any], name: str) -> str:
        """The name a store variable has in the entry's file (renamed by the config)."""
        back = {new: old for old, new in self._part(entry).get("rename", {}).items()}
        return back.get(_path(self.group, name), name).rpartition("/")[2]

    def _store_name(self, entry: dict[str, Any], source_name: str) -> str:
        rename = self._part(entry).get("rename", {})
        return rename.get(_path(self.group, source_name), source_name).rpartition("/")[2]

    def _left_out(self, entry: dict[str, Any]) -> dict[str, str]:
        dropped = self._part(entry).get("dropped")
        return self.result.not_in_store if dropped is None else dropped

    def _foreign(self, entry: dict[str, Any], name: str) -> bool:
        """A coordinate the parts share whose values the store holds from another part."""
        owners = self.fusion.get("shared", {}).get(_path(self.group, name))
        return bool(owners) and owners[0] != entry.get("part")

    def _compare_shared(self, entry, path: str, name: str, source: Source, own: str, attrs) -> None:
        """Another part's coordinate: this file's values agree with the store's within the
        tolerance the commit allowed (decoded: packing, fill values, time units)."""
        svar = self.store.variables[name]
        tolerance = self.fusion.get("tolerance", {}).get(path, 0)
        for region, stored in self.values[entry["file_id"]].get(name, []):
            raw = source.raw(own, local_region(region, svar.dims, self._dim(entry), entry["start"]))
            self.result.chunks_checked += 1
            self.result.values_compared += int(np.size(raw))
            found = disagreement(stored, svar.attrs, raw, attrs, tolerance, _SIDES)
            if found is not None:
                detail = f"differs from the values the store keeps (another part's): {found[0]}"
                self._mismatch(entry, path, detail)

    def _decoded(self, entry, source: Source, names: list[str], own) -> dict[str, list[np.ndarray]]:
        if not names:
            return {}
        values = self.values[entry["file_id"]]
        regions = {own[n]: [r for r, _ in values.get(n, [])] for n in names}
        found = source.decoded(regions, self._dim(entry), entry["start"])
        return {n: found[own[n]] for n in names}

    def _compare_raw(
        self, entry, path: str, name: str, source: Source, attrs: dict, own: str
    ) -> None:
        """Raw numbers as stored, and the attributes that decode them, alike: the two
        decode alike."""
        svar = self.store.variables[name]
        if path in self.meaning.declared:  # decodes to another float type, as declared
            self.result.dtype_differences[path] = self.meaning.declared[path]
        decodes = DECODES + (TIME_DECODES if is_time(svar.attrs) else ())
        for key in decodes:
            got, want = svar.attrs.get(key), attrs.get(key)
            if (got is None and want is None) or same_number(got, want):
                continue
            detail = f"{key} is {got!r} in the store but {want!r} in the source"
            self._mismatch(entry, path, detail)
        for region, stored in self.values[entry["file_id"]][name]:
            raw = source.raw(own, local_region(region, svar.dims, self._dim(entry), entry["start"]))
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
        if want.dtype == dtype or dates_both(want.dtype, dtype) or want.dtype.kind == "f":
            return want.astype(dtype) if want.dtype.kind == "f" else want
        self._mismatch(entry, path, f"dtype {dtype} in the store, {want.dtype} in the source")
        return None

    def _compare(self, entry, path: str, region, got: np.ndarray, want: np.ndarray) -> None:
        self.result.chunks_checked += 1
        self.result.values_compared += int(np.size(want))
        if equal(got, want):
            return
        where = ", ".join(f"{s.start}:{s.stop}" for s in region)
        self._mismatch(entry, path, f"values differ in [{where}]: {first_difference(got, want)}")

    def _meaning(self, entry, path: str, svar: xr.Variable, attrs: dict, reencoded: bool) -> None:
        """Every file's attributes that change what its numbers mean agree with the store's
        (units compared as units), except where the commit re-encoded times, converted
        units, or the config accepts a difference."""
        skip = set(self.meaning.accepted)
        if reencoded or is_time(svar.attrs):
            skip |= {"units", "calendar"}  # compared with the raw numbers, or re-encoded
        else:
            skip.add("calendar")  # says nothing about numbers that are not times (as the commit)
        for key in MEANING_ATTRS:
            if key in skip:
                continue
            got, want = svar.attrs.get(key), attrs.get(key)
            same = same_units(got, want) if key == "units" else same_number(got, want)
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
            if key not in got and why_not_kept(want[key]):
                continue  # left out by the scan, which said why in the commit's notes
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
        if svar.dims == (name,) or is_time(svar.attrs) or name in self._bounds():
            return
        decoded = {}
        if name not in self.reencoded:  # raw numbers: masked and scaled as a reader sees them
            attrs = {k: svar.attrs[k] for k in DECODES if k in svar.attrs}
            decoded = {"store": masked(stored, attrs), "source": masked(source, attrs)}
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


def _inherit_time(attrs: dict[str, dict[str, Any]]) -> None:
    """Time bounds read with their coordinate's units and calendar, as xarray reads them
    (and as the store holds them)."""
    for own in attrs.values():
        bounds = own.get("bounds")
        if is_time(own) and bounds in attrs:
            for key in TIME_DECODES:
                if key in own and key not in attrs[bounds]:
                    attrs[bounds][key] = own[key]


def _shown(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes as a reader sees them: xarray takes a ``coordinates`` attribute as
    encoding, not as an attribute."""
    return {k: v for k, v in attrs.items() if k != "coordinates"}


_FAILED = object()  # a source that changed since its scan (named in the verdict)
_SIDES = ("the store", "the source")


def _unreadable_error(url: str, what: str) -> AccessError:
    return AccessError(
        f"{url}: cannot be read to validate it ({what}); nothing was published: run again "
        "(if the file is gone for good, the next listing says so)"
    )


def _sampled_bytes(var: xr.Variable, concat_dim: str, k: int) -> int:
    """What the store's side of one file costs in memory for ``var``."""
    chunks = var.encoding.get("preferred_chunks") or {}
    sizes = [chunks.get(d, n) or 1 for d, n in zip(var.dims, var.shape, strict=True)]
    per_chunk = math.prod(sizes) * var.dtype.itemsize
    return per_chunk * (max(1, k) if concat_dim in var.dims else 1)


def sampled(key: str, count: int, k: int) -> list[int]:
    """``k`` of ``count`` chunk positions, the same for the same key (a file id and the
    snapshot): each validation of a file looks at other chunks than the last one did."""
    if count <= k:
        return list(range(count))
    rng = random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))
    return sorted(rng.sample(range(count), k))


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
