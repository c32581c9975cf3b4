"""Fusing parts: several archives, each combined along its own dimension, merged by variable.

Takes the manifests of each part of a dataset (``parts`` in the config, each with its own
sources and concatenation) and combines each part on its own (``nc2ice.combine.plan.combine``);
gives one plan holding every part's variables, renamed where the config says (``rename``),
and the coordinates the parts share once: the first part's values, after checking that every
other part's agree with them (exactly, or within ``coordinate_tolerance``).  A data variable
in two parts is refused unless renamed; coordinates that disagree are refused naming the
coordinate, the parts and the first place they differ.  ``plan.fusion`` tells validation which
files belong to which part, along which dimension, and under which names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import cftime
import numpy as np

from nc2ice.combine.encodings import TIME_UNITS, same_units
from nc2ice.combine.plan import ArrayPlan, Plan, combine
from nc2ice.errors import CombineError
from nc2ice.model.manifest import Manifest, Variable

# Settings a part may give itself; the others are the dataset's.
PART_SETTINGS = (
    "concat_dim",
    "concat_order",
    "variables",
    "drop_variables",
    "convert_units",
    "accept_differences",
)
# Attributes naming the variables that describe another's coordinates (CF): such variables are
# merged between parts, never clashing.
COORDINATE_ATTRS = ("bounds", "climatology", "coordinates", "grid_mapping")
Reader = Callable[[Variable], np.ndarray]


def part_settings(ds: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each part's combining settings: the dataset's, overridden by the part's own."""
    base = {k: ds[k] for k in PART_SETTINGS if k in ds}
    return {
        name: {
            **base,
            **{k: v for k, v in part.items() if k in PART_SETTINGS},
            "rename": dict(part.get("rename") or {}),
        }
        for name, part in ds["parts"].items()
    }


@dataclass
class _Part:
    name: str
    plan: Plan
    settings: dict[str, Any]

    @property
    def label(self) -> str:
        return f"part {self.name!r}"


def combine_parts(
    manifests: dict[str, list[tuple[str, Manifest]]],
    ds: dict[str, Any],
    *,
    on_chunk_mismatch: str = "reconcile",
    max_materialized_fraction: float = 0.1,
    reader: Reader | None = None,
) -> Plan:
    """Each part combined along its own dimension, then the parts merged by variable."""
    parts = []
    for name, settings in part_settings(ds).items():
        files = manifests.get(name) or []
        if not files:
            raise CombineError(f"part {name!r}: no file to combine (none listed, or all skipped)")
        try:
            plan = combine(
                files,
                concat_dim=settings["concat_dim"],
                variables=settings.get("variables", "all"),
                drop_variables=settings.get("drop_variables", ()),
                on_chunk_mismatch=on_chunk_mismatch,
                max_materialized_fraction=max_materialized_fraction,
                concat_order=settings.get("concat_order", "coordinate"),
                convert_units=settings.get("convert_units", False),
                accept_differences=settings.get("accept_differences", ()),
                reader=reader,
            )
        except CombineError as exc:
            raise CombineError(f"part {name!r}: {exc}") from None
        parts.append(_Part(name, renamed(name, plan, settings["rename"]), settings))
    return fuse(parts, ds.get("coordinate_tolerance", 0), reader)


def coordinate_paths(plan: Plan) -> set[str]:
    """The plan's coordinates: dimension coordinates, and the variables that bounds,
    coordinates or grid_mapping attributes name (CF)."""
    found = set()
    for path, array in plan.arrays.items():
        var = array.template
        if var.dims == (var.name,):
            found.add(path)
        for key in COORDINATE_ATTRS:
            value = var.attrs.get(key)
            if isinstance(value, str):  # "lat lon", or grid_mapping's "crs: x y" form
                found |= {f"{var.group}/{t.rstrip(':')}".lstrip("/") for t in value.split()}
    return found & set(plan.arrays)


def renamed(name: str, plan: Plan, rename: dict[str, str]) -> Plan:
    """The part's plan with its variables renamed as the config says."""
    if not rename:
        return plan
    coordinates = coordinate_paths(plan)
    for old, new in rename.items():
        where = f"part {name!r}: rename {old!r}"
        if old not in plan.arrays:
            raise CombineError(f"{where}: it has no such variable ({', '.join(plan.arrays)})")
        if old in coordinates:
            raise CombineError(
                f"{where}: it is a coordinate, which the parts share (checked to agree), "
                "not a data variable: only data variables can be renamed"
            )
        if new.rpartition("/")[0] != old.rpartition("/")[0]:
            raise CombineError(f"{where}: the new name must stay in the variable's group")
        if new in plan.arrays and new not in rename:
            raise CombineError(f"{where}: the part has a variable {new!r} already")
    if len(set(rename.values())) != len(rename):
        raise CombineError(f"part {name!r}: rename gives two variables one name")

    def key(path: str) -> str:
        return rename.get(path, path)

    plan.arrays = {key(p): _renamed_array(a, key(p)) for p, a in plan.arrays.items()}
    plan.dropped = {key(p): why for p, why in plan.dropped.items()}
    plan.copied_static = {key(p): v for p, v in plan.copied_static.items()}
    plan.dtype_differences = {key(p): v for p, v in plan.dtype_differences.items()}
    plan.converted = {key(p): v for p, v in plan.converted.items()}
    plan.reencoded = [key(p) for p in plan.reencoded]
    return plan


def _renamed_array(array: ArrayPlan, path: str) -> ArrayPlan:
    """The store's name changes; the files' variables (read for copies) keep theirs."""
    if array.path == path:
        return array
    return replace(array, path=path, template=replace(array.template, path=path))


def tolerance_for(tolerance: float | dict[str, float], path: str) -> float:
    """``coordinate_tolerance``: one number for every coordinate, or one per name."""
    if isinstance(tolerance, dict):
        name = path.rpartition("/")[2]
        return float(tolerance.get(path, tolerance.get(name, 0)))
    return float(tolerance or 0)


def fuse(
    parts: list[_Part], tolerance: float | dict[str, float] = 0, reader: Reader | None = None
) -> Plan:
    """The parts' plans merged by variable: the first part's coordinates, every part's
    variables; a data variable in two parts, or coordinates that disagree, refused."""
    first = parts[0].plan
    fused = Plan(
        files=[],
        group_attrs=dict(first.group_attrs),
        arrays={},
        group_attr_types=dict(first.group_attr_types),
    )
    owner: dict[str, _Part] = {}
    shared: dict[str, list[str]] = {}
    for part in parts:
        coordinates = coordinate_paths(part.plan)
        # dimension coordinates first: the message then names 'time', not 'time_bnds'
        ordered = sorted(part.plan.arrays.items(), key=lambda item: not _is_dimension(item[1]))
        for path, array in ordered:
            if path not in fused.arrays:
                fused.arrays[path], owner[path] = array, part
                continue
            other = owner[path]
            if path not in coordinates and path not in coordinate_paths(other.plan):
                raise CombineError(_clash(path, other, part))
            tol = tolerance_for(tolerance, path)
            _agree(path, (other, fused.arrays[path]), (part, array), tol, reader)
            shared.setdefault(path, [other.name]).append(part.name)
        _merge_records(fused, part)
    fused.arrays = {p: fused.arrays[p] for p in _in_order(parts)}
    _check_dimensions(parts)
    fused.fusion = {
        "parts": {p.name: _description(p) for p in parts},
        "shared": shared,
        "tolerance": {path: tolerance_for(tolerance, path) for path in shared},
    }
    return fused


def _is_dimension(array: ArrayPlan) -> bool:
    return array.template.dims == (array.template.name,)


def _in_order(parts: list[_Part]) -> list[str]:
    """Every variable once, in the order the parts hold them."""
    return list(dict.fromkeys(p for part in parts for p in part.plan.arrays))


def _description(part: _Part) -> dict[str, Any]:
    """What validation needs to know of a part: its files, dimension, names, left-outs."""
    return {
        "concat_dim": part.settings["concat_dim"],
        "rename": part.settings["rename"],
        "files": list(part.plan.files),
        "variables": list(part.plan.arrays),
        "dropped": dict(part.plan.dropped),
    }


def _clash(path: str, first: _Part, second: _Part) -> str:
    return (
        f"variable {path!r} is a data variable of both {first.label} and {second.label}: "
        f"rename it in one of them, e.g. parts: {{{second.name}: {{rename: "
        f"{{{path}: {path}_{second.name}}}}}}} (coordinates the parts share are merged)"
    )


def _merge_records(fused: Plan, part: _Part) -> None:
    """What each part's combining recorded, in the fused plan (variables by store name)."""
    plan = part.plan
    fused.files += plan.files
    for group, attrs in plan.group_attrs.items():  # the first part's global attributes win
        fused.group_attrs.setdefault(group, attrs)
        fused.group_attr_types.setdefault(group, plan.group_attr_types.get(group, {}))
    fused.notes += [f"{part.label}: {note}" for note in plan.notes]
    for path, why in plan.dropped.items():
        earlier = f"{fused.dropped[path]}; " if path in fused.dropped else ""
        fused.dropped[path] = f"{earlier}{part.label}: {why}"
    fused.copied_static.update(plan.copied_static)
    fused.dtype_differences.update(plan.dtype_differences)
    fused.converted.update(plan.converted)
    fused.accepted = sorted(set(fused.accepted) | set(plan.accepted))
    fused.reencoded += [p for p in plan.reencoded if p not in fused.reencoded]


def _check_dimensions(parts: list[_Part]) -> None:
    """A dimension has one size in a dataset: the parts must agree on it (a dimension
    with a coordinate was checked with its values already)."""
    sizes: dict[str, tuple[int, _Part, str]] = {}
    for part in parts:
        for path, array in part.plan.arrays.items():
            var = array.template
            for dim, n in zip(var.dims, array.shape, strict=True):
                key = f"{var.group}/{dim}".lstrip("/")
                size, other, where = sizes.setdefault(key, (n, part, path))
                if size != n:
                    raise CombineError(
                        f"dimension {key!r} has {size} steps in {other.label} ({where!r}) but "
                        f"{n} in {part.label} ({path!r}): the parts must cover the same "
                        f"{key!r} to be fused"
                    )


def _agree(path: str, first, second, tolerance: float, reader: Reader | None) -> None:
    """Refuse a coordinate whose values differ between two parts, naming where."""
    (part_a, array_a), (part_b, array_b) = first, second
    a, b = _values(array_a, reader, path), _values(array_b, reader, path)
    labels = (part_a.label, part_b.label)
    found = disagreement(a, array_a.template.attrs, b, array_b.template.attrs, tolerance, labels)
    if found is None:
        return
    where, index = found
    files = ""
    if index is not None and array_a.axis is not None and array_b.axis is not None:
        files = f" (file {_file_at(array_a, index[0])} of {part_a.label}, "
        files += f"{_file_at(array_b, index[0])} of {part_b.label})"
    raise CombineError(
        f"coordinate {path!r} differs between {part_a.label} and {part_b.label}: "
        f"{where}{files}. Parts are fused only on coordinates that agree (the store keeps "
        f"the values of {part_a.label}); set coordinate_tolerance (absolute, a number or "
        "per coordinate name) to accept small differences"
    )


def _values(array: ArrayPlan, reader: Reader | None, path: str) -> np.ndarray:
    """A coordinate's raw values: loaded, or read from its files."""
    if array.data is not None:
        return array.data
    if reader is None:
        raise CombineError(f"coordinate {path!r} is not loaded and cannot be read to compare it")
    if array.axis is None:
        return reader(array.template)
    return np.concatenate([reader(p.var) for p in array.parts], axis=0)


def _file_at(array: ArrayPlan, step: int) -> str:
    for part in array.parts:
        if part.offset <= step < part.offset + part.var.shape[0]:
            return part.file_id
    return "?"


def disagreement(
    a: np.ndarray,
    a_attrs: dict[str, Any],
    b: np.ndarray,
    b_attrs: dict[str, Any],
    tolerance: float,
    labels: tuple[str, str],
) -> tuple[str, tuple[int, ...] | None] | None:
    """Where one coordinate's values in two places (two parts, or the store and a source)
    differ beyond ``tolerance`` (absolute, in the units of ``a``; times in ``a``'s time
    units): a sentence and the first differing index, or None where they agree.  Both sides
    are compared as their readers decode them (packing, fill values, time units)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return f"shape {a.shape} in {labels[0]}, {b.shape} in {labels[1]}", None
    units = _unit_difference(a_attrs, b_attrs, labels)
    if units:
        return units, None
    numeric = a.dtype.kind in "iufcb" and b.dtype.kind in "iufcb"
    if numeric:
        x, y = _decoded(a, a_attrs), _decoded(b, b_attrs)
        both_times = _is_time(a_attrs) and _is_time(b_attrs)
        if both_times and _time_key(a_attrs) != _time_key(b_attrs):
            y = _in_units_of(y, b_attrs, a_attrs)
        with np.errstate(invalid="ignore"):
            bad = ~((np.abs(x - y) <= tolerance) | (np.isnan(x) & np.isnan(y)))
    else:
        x, y = a.astype(str), b.astype(str)
        bad = x != y
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))
    one, other = _shown(x[index], a_attrs), _shown(y[index], a_attrs)
    shown = f"first at index {list(index)}: {one} in {labels[0]}, {other} in {labels[1]}"
    if numeric:
        unit = f" {a_attrs['units']}" if "units" in a_attrs else ""
        unit = unit.partition(" since ")[0]  # times: "days", not "days since 2000-01-01"
        shown += f" (they differ by {abs(x[index] - y[index]):g}{unit}; tolerance {tolerance:g})"
    return shown, index


def _shown(value: Any, attrs: dict[str, Any]) -> str:
    """A value as a person reads it: a number (in ``attrs``' time units, with its date)."""
    value = value.item() if hasattr(value, "item") else value
    if _is_time(attrs) and isinstance(value, float) and np.isfinite(value):
        date = cftime.num2date(value, str(attrs["units"]), _calendar(attrs))
        return f"{value!r} ({date.isoformat(sep=' ')})"
    return repr(value)


def _is_time(attrs: dict[str, Any]) -> bool:
    return bool(TIME_UNITS.match(str(attrs.get("units", ""))))


def _calendar(attrs: dict[str, Any]) -> str:
    name = str(attrs.get("calendar", "standard")).lower()
    return {"gregorian": "standard", "": "standard", "365_day": "noleap"}.get(name, name)


def _time_key(attrs: dict[str, Any]) -> tuple[str, str]:
    return " ".join(str(attrs.get("units")).split()), _calendar(attrs)


def _unit_difference(a: dict[str, Any], b: dict[str, Any], labels: tuple[str, str]) -> str:
    """Units that give the same numbers other meanings (where both sides name units)."""
    if _is_time(a) != _is_time(b) and "units" in a and "units" in b:
        return f"units {a['units']!r} in {labels[0]}, {b['units']!r} in {labels[1]}"
    if _is_time(a) and _is_time(b):
        if _calendar(a) != _calendar(b):
            return f"calendar {_calendar(a)!r} in {labels[0]}, {_calendar(b)!r} in {labels[1]}"
        return ""
    if "units" in a and "units" in b and not same_units(a["units"], b["units"]):
        return f"units {a['units']!r} in {labels[0]}, {b['units']!r} in {labels[1]}"
    return ""


def _decoded(raw: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    """Numbers as a CF reader decodes them (fill values missing, packing applied)."""
    values = raw.astype("f8")
    for key in ("_FillValue", "missing_value"):
        if key in attrs:
            values[np.isin(raw, np.atleast_1d(attrs[key]))] = np.nan
    return values * float(attrs.get("scale_factor", 1.0)) + float(attrs.get("add_offset", 0.0))


def _in_units_of(values: np.ndarray, source: dict[str, Any], target: dict[str, Any]) -> np.ndarray:
    """Times in ``source``'s units expressed in ``target``'s (same calendar)."""
    out = np.full(values.shape, np.nan)
    ok = np.isfinite(values)
    if ok.any():
        cal = _calendar(source)
        dates = cftime.num2date(values[ok], str(source["units"]), cal)
        out[ok] = np.asarray(cftime.date2num(dates, str(target["units"]), cal), dtype="f8")
    return out
