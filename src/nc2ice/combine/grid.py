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

import numpy as np

from nc2ice.model.manifest import Variable
from nc2ice.model.refs import ChunkRefs


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
    refs: ChunkRefs
    copy: list[int]  # grid chunk indices along the axis whose slabs are copied
    fates: dict[str, dict[Fate, int]] = field(default_factory=dict)  # per file: grid chunks
    copied_bytes: dict[str, int] = field(default_factory=dict)  # per file: bytes copied
    # per file: bytes the store points at, as the file stores them and as split ranges
    referenced_bytes: dict[str, int] = field(default_factory=dict)
    split_bytes: dict[str, int] = field(default_factory=dict)
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
    if axis != 0:
        raise ValueError("files are concatenated along their first dimension")
    parts = [
        p if signature(p.var) == signature(template) or not p.var.referenceable else _foreign(p)
        for p in parts
    ]
    candidates = _candidates(parts)
    scored = [(_cost(parts, shape, g), g) for g in candidates]
    _, best = min(scored, key=lambda s: (s[0][0], s[0][1], -math.prod(s[1])))
    return _build(parts, shape, best)


def _foreign(part: Part) -> Part:
    """A part whose bytes the array's codecs cannot read: every chunk of it is copied."""
    return Part(part.file_id, part.var, part.offset, foreign=True)


def _candidates(parts: list[Part]) -> list[tuple[int, ...]]:
    """Each file's own chunking, and the same aligned to every file boundary: the largest
    step that divides the lengths of all files but the last (and all chunk lengths)."""
    virtual = [p for p in parts if p.var.referenceable and not p.foreign] or parts
    lengths = 0
    for p in parts[:-1]:
        lengths = math.gcd(lengths, p.var.shape[0])
    everything = lengths
    for p in virtual:
        everything = math.gcd(everything, p.var.chunks[0])
    found: dict[tuple[int, ...], None] = {}
    for p in virtual:
        chunks = p.var.chunks
        found[chunks] = None
        for step in (math.gcd(lengths, chunks[0]), everything):
            if step:
                found[(step, *chunks[1:])] = None
    return list(found)


AS_IS, SPLIT, COPY = 0, 1, 2
_FATES = {AS_IS: Fate.AS_IS, SPLIT: Fate.SPLIT, COPY: Fate.COPY}


def _classify(part: Part, total: int, grid: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The grid chunks along the axis that the part touches, and the fate of each."""
    var, start, n, step = part.var, part.offset, part.var.shape[0], grid[0]
    stored = var.chunks
    g = np.arange(start // step, math.ceil((start + n) / step), dtype=np.int64)
    lo = g * step
    hi = np.minimum(lo + step, total)
    local = lo - start
    copy = (lo < start) | (hi > start + n)
    if not var.referenceable or part.foreign:
        copy[:] = True
    fates = np.full(g.shape, COPY, dtype=np.int8)
    if all(stored[j] == grid[j] for j in range(1, len(grid))) and stored[0] == step:
        fates[~copy & (local % step == 0)] = AS_IS
    if var.referenceable and var.uncompressed and _nests(stored, grid):
        fates[~copy & (fates == COPY) & (local % stored[0] + step <= stored[0])] = SPLIT
    return g, fates


def _nests(stored: tuple[int, ...], grid: tuple[int, ...]) -> bool:
    """Whether each grid chunk is one contiguous run of bytes inside a stored chunk."""
    if any(stored[j] % grid[j] for j in range(1, len(grid))):
        return False
    if grid[0] > stored[0]:
        return False
    leading = next((j for j, g in enumerate(grid) if g != 1), len(grid) - 1)
    return all(grid[j] == stored[j] for j in range(leading + 1, len(grid)))


def _slab_bytes(shape: tuple[int, ...], lo: np.ndarray, hi: np.ndarray, itemsize: int) -> int:
    return int((hi - lo).sum()) * math.prod(shape[1:]) * itemsize


def _cost(parts: list[Part], shape: tuple[int, ...], grid) -> tuple[int, int]:
    total, step = shape[0], grid[0]
    itemsize = parts[0].var.np_dtype.itemsize
    per_slab = math.prod(math.ceil(s / c) for s, c in zip(shape[1:], grid[1:]))
    fates = [_classify(part, total, grid) for part in parts]
    copy = np.unique(np.concatenate([g[f == COPY] for g, f in fates]))
    refs = sum(int(np.count_nonzero(f != COPY)) for _, f in fates) * per_slab
    copied = _slab_bytes(shape, copy * step, np.minimum((copy + 1) * step, total), itemsize)
    return copied, refs


def _build(parts: list[Part], shape: tuple[int, ...], grid) -> GridPlan:
    total, step = shape[0], grid[0]
    itemsize = parts[0].var.np_dtype.itemsize
    refs = ChunkRefs.empty(tuple(math.ceil(s / c) for s, c in zip(shape, grid)))
    fates = [_classify(p, total, grid) for p in parts]
    copy = np.unique(np.concatenate([g[f == COPY] for g, f in fates]))
    plan = GridPlan(chunks=tuple(grid), refs=refs, copy=copy.tolist())
    for part, (g, f) in zip(parts, fates, strict=True):
        f = np.where(np.isin(g, copy), COPY, f)
        counts = {_FATES[k]: int(np.count_nonzero(f == k)) for k in (AS_IS, SPLIT, COPY)}
        plan.referenced_bytes[part.file_id] = _place_as_is(refs, part, g[f == AS_IS], step)
        plan.split_bytes[part.file_id] = _place_split(refs, part, g[f == SPLIT], grid, itemsize)
        copied = g[f == COPY]
        lo = np.maximum(copied * step, part.offset)
        hi = np.minimum(np.minimum((copied + 1) * step, total), part.offset + part.var.shape[0])
        plan.fates[part.file_id] = counts
        plan.copied_bytes[part.file_id] = _slab_bytes(shape, lo, hi, itemsize)
        if counts[Fate.COPY]:
            plan.reasons[part.file_id] = _why_copied(part, grid)
    return plan


def _place_as_is(refs: ChunkRefs, part: Part, g: np.ndarray, step: int) -> int:
    """Grid chunks the file stores exactly: its references, unchanged; their bytes."""
    if not g.size:
        return 0
    source = part.var.refs
    local = (g * step - part.offset) // part.var.chunks[0]
    refs.offsets[g] = source.offsets[local]
    refs.lengths[g] = source.lengths[local]
    refs.file[g] = _file_ids(refs, source)[source.file[local]]
    return int(source.lengths[local].sum())


def _place_split(refs: ChunkRefs, part: Part, g: np.ndarray, grid, itemsize: int) -> int:
    """Grid chunks inside a larger uncompressed stored chunk: a byte range within it; the
    bytes of those ranges."""
    if not g.size:
        return 0
    var, source = part.var, part.var.refs
    stored = var.chunks
    index = np.indices((g.size, *refs.grid[1:])).reshape(len(grid), -1)
    start = [g[index[0]] * grid[0] - part.offset] + [
        index[j] * grid[j] for j in range(1, len(grid))
    ]
    where = tuple(s // c for s, c in zip(start, stored, strict=True))
    within = [s % c for s, c in zip(start, stored, strict=True)]
    strides = [math.prod(stored[j + 1 :]) for j in range(len(stored))]
    lengths = source.lengths[where]
    written = lengths > 0
    full = itemsize * math.prod(stored)
    if np.any(lengths[written] != full):
        url = source.urls[0] if source.urls else part.file_id
        raise ValueError(f"{url}: {var.path!r} has an uncompressed chunk of an unexpected size")
    target = (g[index[0]], *index[1:])
    target = tuple(t[written] for t in target)
    step = sum(w * s for w, s in zip(within, strides, strict=True))
    refs.offsets[target] = (source.offsets[where] + itemsize * step)[written]
    refs.lengths[target] = itemsize * math.prod(grid)
    refs.file[target] = _file_ids(refs, source)[source.file[where]][written]
    return int(written.sum()) * itemsize * math.prod(grid)


def _file_ids(refs: ChunkRefs, source: ChunkRefs) -> np.ndarray:
    """The index in ``refs.urls`` of each of ``source.urls``."""
    return np.array([refs.url_id(u) for u in source.urls] or [0], dtype=np.int32)


def _why_copied(part: Part, grid: tuple[int, ...]) -> str:
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
