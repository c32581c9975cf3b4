"""Chunk-grid reconciliation: one regular grid for files whose chunking differs.

Zarr 3.1 and Icechunk 1.1 hold a regular chunk grid only.  For each candidate grid, every
grid chunk of every file is either

- ``AS_IS``: the file stores exactly that chunk, referenced unchanged;
- ``SPLIT``: the file stores it uncompressed inside a larger chunk, as one contiguous byte
  range, referenced at an offset (still virtual, nothing copied);
- ``COPY``: neither (compressed and misaligned, or straddling two files): its values are
  read from the sources and written into the store as native chunks.

The grid chosen copies the fewest bytes and, among those, needs the fewest references.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import product

from nc2ice.manifest import ChunkRef, Variable


class Fate(StrEnum):
    AS_IS = "as_is"
    SPLIT = "split"
    COPY = "copy"


@dataclass
class Part:
    """One file's piece of a concatenated variable, ``offset`` elements along the axis."""

    file_id: str
    var: Variable
    offset: int
    foreign: bool = False  # encoded unlike the array (byte order, codecs): copied


@dataclass
class GridPlan:
    chunks: tuple[int, ...]
    refs: dict[tuple[int, ...], ChunkRef]
    copy: list[int]  # grid chunk indices along the axis whose slabs are copied
    fates: dict[str, dict[Fate, int]] = field(default_factory=dict)  # per file: grid chunks
    copied_bytes: dict[str, int] = field(default_factory=dict)  # per file: bytes copied
    reasons: dict[str, str] = field(default_factory=dict)  # per file: why anything was copied


def signature(var: Variable) -> tuple:
    """What must agree for a file's chunks to be read through one array's codecs."""

    def strip(config: dict | None) -> tuple:
        levels = ("level", "clevel", "blocksize")
        return tuple(sorted((k, repr(v)) for k, v in (config or {}).items() if k not in levels))

    codecs = (tuple(strip(f) for f in var.filters or []), strip(var.compressor))
    return (var.dtype, *codecs, repr(var.storage_fill))


def template_of(parts: list[Part]) -> Variable:
    """The encoding most of the referenced bytes share; the others are copied."""
    virtual = [p.var for p in parts if p.var.referenceable] or [p.var for p in parts]
    weight: dict[tuple, int] = {}
    for var in virtual:
        weight[signature(var)] = weight.get(signature(var), 0) + var.nbytes
    best = max(weight, key=lambda k: weight[k])
    return next(v for v in virtual if signature(v) == best)


def plan_grid(parts: list[Part], axis: int, shape: tuple[int, ...], template: Variable) -> GridPlan:
    parts = [
        p if signature(p.var) == signature(template) or not p.var.referenceable else _foreign(p)
        for p in parts
    ]
    candidates = _candidates(parts, axis)
    scored = [(_cost(parts, axis, shape, g), g) for g in candidates]
    _, best = min(scored, key=lambda s: (s[0][0], s[0][1], -math.prod(s[1])))
    return _build(parts, axis, shape, best)


def _foreign(part: Part) -> Part:
    """A part whose bytes the array's codecs cannot read: every chunk of it is copied."""
    return Part(part.file_id, part.var, part.offset, foreign=True)


def _candidates(parts: list[Part], axis: int) -> list[tuple[int, ...]]:
    """Each file's own chunking, and the same aligned to every file boundary: the largest
    step that divides the lengths of all files but the last (and all chunk lengths)."""
    virtual = [p for p in parts if p.var.referenceable and not p.foreign] or parts
    lengths = 0
    for p in parts[:-1]:
        lengths = math.gcd(lengths, p.var.shape[axis])
    everything = lengths
    for p in virtual:
        everything = math.gcd(everything, p.var.chunks[axis])
    found: dict[tuple[int, ...], None] = {}
    for p in virtual:
        chunks = p.var.chunks
        found[chunks] = None
        for step in (math.gcd(lengths, chunks[axis]), everything):
            if step:
                found[chunks[:axis] + (step,) + chunks[axis + 1 :]] = None
    return list(found)


def _classify(part: Part, axis: int, total: int, grid: tuple[int, ...]) -> dict[int, Fate]:
    var, start, n, step = part.var, part.offset, part.var.shape[axis], grid[axis]
    stored = var.chunks
    others_fit = all(stored[j] == grid[j] for j in range(len(grid)) if j != axis)
    splittable = var.referenceable and var.uncompressed and _nests(stored, grid, axis)
    fates = {}
    for g in range(start // step, math.ceil((start + n) / step)):
        lo, hi = g * step, min((g + 1) * step, total)
        local = lo - start
        if not var.referenceable or part.foreign or lo < start or hi > start + n:
            fates[g] = Fate.COPY
        elif others_fit and stored[axis] == step and local % step == 0:
            fates[g] = Fate.AS_IS
        elif splittable and local % stored[axis] + step <= stored[axis]:
            fates[g] = Fate.SPLIT
        else:
            fates[g] = Fate.COPY
    return fates


def _nests(stored: tuple[int, ...], grid: tuple[int, ...], axis: int) -> bool:
    """Whether each grid chunk is one contiguous run of bytes inside a stored chunk."""
    if any(stored[j] % grid[j] for j in range(len(grid)) if j != axis):
        return False
    if grid[axis] > stored[axis]:
        return False
    leading = next((j for j, g in enumerate(grid) if g != 1), len(grid) - 1)
    return all(grid[j] == stored[j] for j in range(leading + 1, len(grid)))


def _slab_bytes(shape: tuple[int, ...], axis: int, lo: int, hi: int, itemsize: int) -> int:
    others = math.prod(s for j, s in enumerate(shape) if j != axis)
    return (hi - lo) * others * itemsize


def _cost(parts: list[Part], axis: int, shape: tuple[int, ...], grid) -> tuple[int, int]:
    total = shape[axis]
    itemsize = parts[0].var.np_dtype.itemsize
    copy: set[int] = set()
    refs = 0
    per_slab = math.prod(math.ceil(s / g) for j, (s, g) in enumerate(zip(shape, grid)) if j != axis)
    for part in parts:
        for g, fate in _classify(part, axis, total, grid).items():
            if fate is Fate.COPY:
                copy.add(g)
            else:
                refs += per_slab
    step = grid[axis]
    copied = sum(
        _slab_bytes(shape, axis, g * step, min((g + 1) * step, total), itemsize) for g in copy
    )
    return copied, refs


def _build(parts: list[Part], axis: int, shape: tuple[int, ...], grid) -> GridPlan:
    total, step = shape[axis], grid[axis]
    itemsize = parts[0].var.np_dtype.itemsize
    plan = GridPlan(chunks=tuple(grid), refs={}, copy=[])
    fates_by_part = [_classify(p, axis, total, grid) for p in parts]
    copy = {g for fates in fates_by_part for g, f in fates.items() if f is Fate.COPY}
    plan.copy = sorted(copy)
    other_ranges = [
        range(math.ceil(s / c)) if j != axis else range(1)
        for j, (s, c) in enumerate(zip(shape, grid))
    ]
    for part, fates in zip(parts, fates_by_part, strict=True):
        counts = dict.fromkeys(Fate, 0)
        copied = 0
        for g, fate in fates.items():
            fate = Fate.COPY if g in copy else fate
            counts[fate] += 1
            lo, hi = g * step, min((g + 1) * step, total)
            if fate is Fate.COPY:
                a, b = max(lo, part.offset), min(hi, part.offset + part.var.shape[axis])
                copied += _slab_bytes(shape, axis, a, b, itemsize)
                continue
            for other in product(*other_ranges):
                index = tuple(g if j == axis else other[j] for j in range(len(grid)))
                ref = _ref_for(part, axis, grid, index, fate)
                if ref is not None:
                    plan.refs[index] = ref
        plan.fates[part.file_id] = counts
        plan.copied_bytes[part.file_id] = copied
        if counts[Fate.COPY]:
            plan.reasons[part.file_id] = _why_copied(part, axis, grid)
    return plan


def _why_copied(part: Part, axis: int, grid: tuple[int, ...]) -> str:
    var = part.var
    if var.undecodable:
        return var.undecodable
    if not var.referenceable:
        return "its values could be loaded but not referenced"
    if part.foreign:
        return "it is encoded differently (byte order or compression) from the other files"
    if var.chunks != tuple(grid) and not var.uncompressed:
        return f"its compressed chunks {var.chunks} do not fit the common grid {tuple(grid)}"
    return f"its length or position does not line up with the common grid {tuple(grid)}"


def _ref_for(part: Part, axis: int, grid, index, fate: Fate) -> ChunkRef | None:
    var, stored = part.var, part.var.chunks
    start = [i * g for i, g in zip(index, grid)]
    start[axis] -= part.offset
    stored_index = tuple(s // c for s, c in zip(start, stored))
    ref = var.refs.get(stored_index)
    if ref is None or fate is Fate.AS_IS:
        return ref
    itemsize = var.np_dtype.itemsize
    if ref[2] != itemsize * math.prod(stored):
        raise ValueError(f"{ref[0]}: {var.path!r} chunk {stored_index} has an unexpected size")
    within = [s % c for s, c in zip(start, stored)]
    strides = [math.prod(stored[j + 1 :]) for j in range(len(stored))]
    offset = ref[1] + itemsize * sum(w * s for w, s in zip(within, strides))
    return (ref[0], offset, itemsize * math.prod(grid))
