"""Combining per-file manifests into one dataset plan, refusing what would read back wrong.

The plan says, for every array of the store, its metadata and either its loaded values or its
chunk references, and which slabs must be copied.  Nothing is written here.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from nc2ice.combine.encodings import (
    calendar,
    convertible,
    describe_differences,
    encoding_key,
    first_value,
    harmonise,
    inherit_bounds_units,
    last_value,
    meaning_differences,
    reader_dtypes,
)
from nc2ice.combine.grid import Fate, GridPlan, Part, plan_grid, template_of
from nc2ice.errors import CombineError
from nc2ice.model.manifest import ChunkRef, Manifest, Variable
from nc2ice.scan.formats.policy import bounds_names

LOADED_CHUNK_BYTES = 32 << 20
STATIC_COPY_LIMIT = 64 << 20


@dataclass
class ArrayPlan:
    path: str
    template: Variable  # metadata: dims, dtype, attrs, codecs
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    refs: dict[tuple[int, ...], ChunkRef] = field(default_factory=dict)
    data: np.ndarray | None = None
    axis: int | None = None
    parts: list[Part] = field(default_factory=list)
    grid: GridPlan | None = None

    def copy_slabs(self) -> list[tuple[int, int]]:
        if self.grid is None or self.axis is None:
            return []
        step, total = self.chunks[self.axis], self.shape[self.axis]
        return [(g * step, min((g + 1) * step, total)) for g in self.grid.copy]


@dataclass
class Plan:
    files: list[str]  # file ids in concatenation order
    group_attrs: dict[str, dict[str, Any]]
    arrays: dict[str, ArrayPlan]
    group_attr_types: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # variable → why
    copied_static: dict[str, tuple[int, str]] = field(default_factory=dict)  # path → bytes, why
    dtype_differences: dict[str, dict[str, str]] = field(default_factory=dict)
    # variables converted to the first file's units: path -> each file's units before
    converted: dict[str, dict[str, str]] = field(default_factory=dict)
    accepted: list[str] = field(default_factory=list)  # attributes allowed to differ
    reencoded: list[str] = field(default_factory=list)  # stored in another encoding than read
    # parts merged by variable (nc2ice.combine.fusion): each part's files, dimension, names
    fusion: dict[str, Any] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        reasons: dict[str, list[str]] = defaultdict(list)
        per_file: dict[str, dict[str, int]] = {
            f: {"as_is": 0, "split": 0, "copied": 0, "copied_bytes": 0, "referenced_bytes": 0}
            for f in self.files
        }
        split_bytes = 0
        for array in self.arrays.values():
            if array.grid is None:
                continue
            for file_id, counts in array.grid.fates.items():
                for fate, n in counts.items():
                    key = "copied" if fate is Fate.COPY else fate.value
                    per_file[file_id][key] += n
                per_file[file_id]["copied_bytes"] += array.grid.copied_bytes[file_id]
                per_file[file_id]["referenced_bytes"] += array.grid.referenced_bytes.get(file_id, 0)
                split_bytes += array.grid.split_bytes.get(file_id, 0)
            for file_id, why in array.grid.reasons.items():
                reasons[file_id].append(f"{array.path}: {why}")
        virtual = [a for a in self.arrays.values() if a.data is None]
        return {
            "files": len(self.files),
            "arrays": len(self.arrays),
            "virtual_arrays": len(virtual),
            "loaded_arrays": sorted(a.path for a in self.arrays.values() if a.data is not None),
            "chunk_references": sum(len(a.refs) for a in self.arrays.values()),
            "files_as_is": sorted(f for f, c in per_file.items() if not c["split"] + c["copied"]),
            "files_split": sorted(f for f, c in per_file.items() if c["split"]),
            "files_copied": sorted(f for f, c in per_file.items() if c["copied"]),
            "copied_bytes": sum(c["copied_bytes"] for c in per_file.values())
            + sum(n for n, _ in self.copied_static.values()),
            "referenced_bytes": sum(c["referenced_bytes"] for c in per_file.values())
            + sum(
                int(a.refs.lengths.sum())
                for a in self.arrays.values()
                if a.grid is None and len(a.refs)
            ),
            "split_bytes": split_bytes,
            "copied_why": dict(reasons),
            "copied_variables": {p: why for p, (_, why) in self.copied_static.items()},
            "dtype_differences": self.dtype_differences,
            "units_converted": self.converted,
            "accepted_differences": self.accepted,
            "reencoded": self.reencoded,
            "grids": {a.path: list(a.chunks) for a in self.arrays.values() if a.grid},
            "per_file": per_file,
            "dropped_variables": self.dropped,
            "notes": self.notes,
        }


def combine(
    manifests: list[tuple[str, Manifest]],
    *,
    concat_dim: str,
    variables: str = "all",
    drop_variables: list[str] | tuple[str, ...] = (),
    on_chunk_mismatch: str = "reconcile",
    max_materialized_fraction: float = 0.1,
    concat_order: str = "coordinate",
    convert_units: bool = False,
    accept_differences: list[str] | tuple[str, ...] = (),
    reader: Any = None,
) -> Plan:
    if not manifests:
        raise CombineError("no file to combine")
    first = manifests[0][1]
    plan = Plan(
        files=[],
        group_attrs=dict(first.group_attrs),
        arrays={},
        group_attr_types=dict(first.group_attr_types),
    )
    for name in drop_variables:
        plan.dropped[name] = "listed in drop_variables"
    for _, m in manifests:
        inherit_bounds_units(m)
        for name in drop_variables:
            m.variables.pop(name, None)
        plan.notes.extend(f"{m.url}: {note}" for note in m.notes)
    _reconcile_variable_sets(manifests, variables, plan)
    _check_dimensions(manifests, concat_dim)
    for file_id, m in manifests:
        if any(concat_dim in v.dims and v.shape[0] == 0 for v in m.variables.values()):
            plan.notes.append(f"{file_id} has no steps along {concat_dim!r}: it adds nothing")
    if concat_order == "coordinate":
        unordered = [f for f, m in manifests if _values_of(m, concat_dim) is None]
        if unordered:
            plan.notes.append(
                f"{unordered[0]} and {len(unordered) - 1} other file(s) have no {concat_dim!r} "
                "coordinate values to order by: the files are concatenated in the order listed"
            )
        manifests = _in_order(manifests, concat_dim)
    plan.files = [file_id for file_id, _ in manifests]
    bounds = bounds_names(manifests[0][1].variables.values())
    meaning = _Meaning(convert_units, tuple(accept_differences))
    plan.accepted = sorted(accept_differences)
    for path in manifests[0][1].variables:
        versions = [(fid, m.variables[path]) for fid, m in manifests]
        values = _keeps_values(versions[0][1], bounds)
        units = meaning.check(path, versions, concat_dim in versions[0][1].dims, plan)
        plan.arrays[path] = _plan_array(path, versions, concat_dim, plan, reader, values, units)
        found = reader_dtypes(versions[0][1], plan.arrays[path].template)
        if found:
            plan.dtype_differences[path] = found
    _left_out_by_the_scan(manifests, plan)
    _check_copy_policy(plan, on_chunk_mismatch, max_materialized_fraction)
    return plan


LEFT_OUT = re.compile(r"^left out '([^']+)': (.+)$")


def _left_out_by_the_scan(manifests, plan: Plan) -> None:
    """Variables a scan left out (with a note saying why) are named as left out, so that a
    variable that is in a file but not in the store is always one of these."""
    for _, manifest in manifests:
        for note in manifest.notes:
            found = LEFT_OUT.match(note)
            if found and found.group(1) not in plan.arrays:
                plan.dropped.setdefault(found.group(1), f"left out by the scan: {found.group(2)}")


def _keeps_values(var: Variable, bounds: set[str]) -> bool:
    """Coordinates, bounds and scalars are stored as values (readers want them in one
    piece); data variables as references wherever every file has them."""
    is_coordinate = len(var.dims) == 1 and var.dims[0] == var.name
    return var.shape == () or is_coordinate or var.path in bounds


def _reconcile_variable_sets(manifests, policy: str, plan: Plan) -> None:
    union = {p for _, m in manifests for p in m.variables}
    groups: dict[frozenset, list[str]] = defaultdict(list)
    for file_id, m in manifests:
        missing = frozenset(union - set(m.variables))
        groups[missing].append(file_id)
    if len(groups) == 1:
        return
    if policy == "common":
        common = set.intersection(*(set(m.variables) for _, m in manifests))
        for path in sorted(union - common):
            have = sum(path in m.variables for _, m in manifests)
            plan.dropped[path] = f"only in {have} of {len(manifests)} files (variables: common)"
        for _, m in manifests:
            m.variables = {k: v for k, v in m.variables.items() if k in common}
        return
    lines = [
        f"  {len(files)} file(s) lack {sorted(missing)}: {_examples(files)}"
        for missing, files in sorted(groups.items(), key=lambda g: -len(g[1]))
        if missing
    ]
    complete = groups.get(frozenset(), [])
    raise CombineError(
        "the files do not all hold the same variables "
        f"({len(complete)} hold all {len(union)}):\n" + "\n".join(lines) + "\n"
        "Set `variables: common` to keep only the variables every file has, "
        "or list the odd ones in `drop_variables`."
    )


def _check_dimensions(manifests, concat_dim: str) -> None:
    signatures: dict[tuple, list[str]] = defaultdict(list)
    for file_id, m in manifests:
        sizes: dict[str, Any] = {}
        for v in m.variables.values():
            sizes[f"dims of {v.path}"] = v.dims
            for dim, n in zip(v.dims, v.shape, strict=True):
                if dim != concat_dim:
                    sizes[f"{v.group}/{dim}".lstrip("/")] = n
            if concat_dim in v.dims and v.dims.index(concat_dim) != 0:
                raise CombineError(f"{m.url}: {v.path!r} has {concat_dim!r} not as its first dim")
        signatures[tuple(sorted(sizes.items()))].append(file_id)
    if len(signatures) > 1:
        differing = _differing_keys([dict(sig) for sig in signatures])
        lines = [
            f"  { {k: dict(sig).get(k) for k in differing} } in {len(f)} file(s): {_examples(f)}"
            for sig, f in signatures.items()
        ]
        raise CombineError("dimensions differ between files:\n" + "\n".join(lines))


def _differing_keys(dicts: list[dict[str, Any]]) -> list[str]:
    keys = sorted({k for d in dicts for k in d})
    return [k for k in keys if len({repr(d.get(k)) for d in dicts}) > 1]


def _examples(files: list[str], n: int = 3) -> str:
    more = f" and {len(files) - n} more" if len(files) > n else ""
    return ", ".join(files[:n]) + more


def _values_of(manifest: Manifest, name: str) -> Any:
    var = manifest.variables.get(name)
    return None if var is None else var.data


def _in_order(manifests, concat_dim: str):
    """Files sorted by the first value of the concatenation coordinate, decoded per file
    (compared as numbers where every file encodes it alike: decoding is the slow part)."""
    if any(_values_of(m, concat_dim) is None for _, m in manifests):
        return manifests
    coords = [m.variables[concat_dim] for _, m in manifests]
    empty = [pair for pair, c in zip(manifests, coords, strict=True) if not c.data.size]
    if empty:  # files without steps add nothing: order the others, then list them
        full = [pair for pair, c in zip(manifests, coords, strict=True) if c.data.size]
        return [*_in_order(full, concat_dim), *empty]
    if len({(str(c.attrs.get("units")), calendar(c)) for c in coords}) == 1:
        firsts = [c.data.reshape(-1)[0].item() for c in coords]
        lasts = [c.data.reshape(-1)[-1].item() for c in coords]
    else:
        firsts, lasts = [first_value(c) for c in coords], [last_value(c) for c in coords]
    order = sorted(range(len(manifests)), key=lambda i: firsts[i])
    for a, b in zip(order, order[1:]):
        if lasts[a] >= firsts[b]:
            raise CombineError(
                f"{manifests[a][0]} and {manifests[b][0]} overlap along {concat_dim!r}: "
                f"one ends at {_show(last_value(coords[a]))}, the other starts at "
                f"{_show(first_value(coords[b]))}. "
                "Two versions of the same period? List only one of them. Or, if this "
                f"coordinate restarts in every file, set `concat_order: listed` to "
                "concatenate the files in the order they are listed"
            )
    return [manifests[i] for i in order]


def _show(key: Any) -> str:
    if isinstance(key, tuple):
        return "{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}".format(*key[:6])
    return repr(key)


@dataclass
class _Meaning:
    """What the config says about files whose attributes give their numbers other meanings."""

    convert_units: bool
    accepted: tuple[str, ...]

    def check(self, path: str, versions, concatenated: bool, plan: Plan) -> str | None:
        """Refuse differences of meaning, naming files and values; the units to convert
        to where the config asks for conversion."""
        found = meaning_differences(versions, self.accepted)
        units = found.pop("units", None) if concatenated and self.convert_units else None
        if units is not None:
            target = versions[0][1].attrs.get("units")
            odd = [(f, v.attrs.get("units")) for f, v in versions if v.attrs.get("units")]
            if target is None or any(not convertible(u, target) for _, u in odd):
                found["units"] = units  # e.g. K beside m s-1: no conversion makes them one
                units = None
        if found:
            raise CombineError(
                describe_differences(path, found) + "\n" + _hint(found, concatenated)
            )
        for key in self.accepted:
            if meaning_differences(versions, set(self.accepted) - {key}).get(key):
                plan.notes.append(
                    f"{path!r}: {key} differs between files (accepted): the store keeps the "
                    "first file's"
                )
        return versions[0][1].attrs.get("units") if units is not None else None


ACCEPTABLE = {
    "standard_name",
    "positive",
    "valid_min",
    "valid_max",
    "valid_range",
    "flag_values",
    "flag_masks",
    "flag_meanings",
}


def _hint(found: dict[str, Any], concatenated: bool) -> str:
    """What the config can do about a difference of meaning."""
    hints = []
    if "units" in found and concatenated:
        hints.append(
            "set `convert_units: true` to store the values converted to the first file's "
            "units (copied into the store)"
        )
    acceptable = sorted(set(found) & ACCEPTABLE)
    if acceptable:
        hints.append(
            "if the difference does not change the values' meaning, list "
            f"{', '.join(acceptable)} in `accept_differences`"
        )
    hints.append("list only the files that agree")
    return "To go on: " + "; or ".join(hints)


def _plan_array(
    path, versions, concat_dim, plan: Plan, reader, keep_values: bool, units: str | None = None
) -> ArrayPlan:
    first = versions[0][1]
    if concat_dim not in first.dims:
        return _static_array(path, versions, concat_dim, plan, reader, keep_values)
    if units is not None or len({encoding_key(v) for _, v in versions}) > 1:
        if units is not None:
            plan.converted[path] = {f: str(v.attrs.get("units")) for f, v in versions}
        versions = harmonise(path, versions, plan.notes, reader, units)
        plan.reencoded.append(path)  # its stored numbers differ from the files': compare decoded
        if not keep_values:  # a data variable, referenced otherwise: its values are copies
            why = f"its files differ in {'units' if units else 'encoding'} (decoded to one)"
            plan.copied_static[path] = (sum(v.nbytes for _, v in versions), why)
    parts, offset = [], 0
    for file_id, var in versions:
        parts.append(Part(file_id, var, offset))
        offset += var.shape[0]
    template = _with_attrs_of(template_of(parts), versions[0][1])
    shape = (offset, *template.shape[1:])
    array = ArrayPlan(path, template, shape, template.chunks, axis=0, parts=parts)
    everywhere = all(p.var.referenceable for p in parts)
    if all(p.var.loaded for p in parts) and (keep_values or not everywhere):
        array.data = np.concatenate([p.var.data for p in parts], axis=0)
        array.chunks = _loaded_chunks(array.data, template)
        if not keep_values and path not in plan.copied_static:  # a data variable: copies
            odd = sum(not p.var.referenceable for p in parts)
            why = f"{odd} of {len(parts)} files hold it in a form the store cannot reference"
            plan.copied_static[path] = (array.data.nbytes, why)
        return array
    array.grid = plan_grid(parts, 0, shape, template)
    array.chunks, array.refs = array.grid.chunks, array.grid.refs
    return array


def _with_attrs_of(template: Variable, first: Variable) -> Variable:
    """The encoding of the template (the files' majority), the attributes of the first file."""
    if template is first:
        return template
    return replace(template, attrs=first.attrs, attr_types=first.attr_types)


def _static_array(path, versions, concat_dim: str, plan: Plan, reader, keep_values) -> ArrayPlan:
    file_id, first = versions[0]
    for other_id, var in versions[1:]:
        if var.loaded and first.loaded and not _same_values(var.data, first.data):
            raise CombineError(
                f"{path!r} has no {concat_dim!r} dimension but differs between files "
                f"{file_id} and {other_id}; such a variable must be the same in every file "
                "(or be listed in drop_variables)"
            )
    array = ArrayPlan(path, first, first.shape, first.chunks, refs=first.refs.copy())
    if first.referenceable and not (first.loaded and keep_values):
        return array
    if not first.loaded:
        if first.nbytes > STATIC_COPY_LIMIT or reader is None:
            raise CombineError(
                f"{path!r} ({first.nbytes} bytes) cannot be referenced ({first.undecodable}) "
                f"and is too large to copy (the limit is {STATIC_COPY_LIMIT} bytes); "
                "list it in drop_variables to leave it out"
            )
        first = replace(first, data=reader(first))
        plan.copied_static[path] = (first.nbytes, first.undecodable)
    array.refs, array.data = first.no_refs(), first.data
    array.chunks = _loaded_chunks(first.data, first)
    return array


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _loaded_chunks(data: np.ndarray, template: Variable) -> tuple[int, ...]:
    if data.nbytes <= LOADED_CHUNK_BYTES or not data.shape:
        return tuple(max(1, s) for s in data.shape)
    return tuple(min(c, s) or 1 for c, s in zip(template.chunks, data.shape, strict=True))


def _check_copy_policy(plan: Plan, on_mismatch: str, max_fraction: float) -> None:
    report = plan.report()
    total = sum(
        math.prod(a.shape) * a.template.np_dtype.itemsize
        for path, a in plan.arrays.items()
        if a.grid is not None or path in plan.copied_static
    )
    copied = report["copied_bytes"]
    odd = sorted(set(report["files_split"]) | set(report["files_copied"]))
    if on_mismatch == "error" and odd:
        raise CombineError(
            f"chunking differs between files and on_chunk_mismatch is 'error': "
            f"{len(odd)} file(s) do not fit one chunk grid: {_examples(odd, 10)}"
        )
    if total and copied / total > max_fraction:
        per_file = report["per_file"]
        lines = [
            f"  {f}: {per_file[f]['copied_bytes']} bytes ({'; '.join(report['copied_why'][f])})"
            for f in sorted(report["files_copied"], key=lambda f: -per_file[f]["copied_bytes"])[:20]
        ]
        why = Counter(r for f in report["files_copied"] for r in report["copied_why"][f])
        why.update(f"{p}: {r}" for p, r in report["copied_variables"].items())
        reason, count = why.most_common(1)[0]
        raise CombineError(
            f"the store would need a copy of {copied} of {total} bytes ({copied / total:.1%}), "
            f"more than max_materialized_fraction ({max_fraction:.1%}); in {count} case(s) "
            f"because {reason}. Files that would be copied:\n" + "\n".join(lines) + "\n"
            "Raise max_materialized_fraction to copy them, or rechunk or recompress those files."
        )
