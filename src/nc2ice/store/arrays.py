"""Writing a plan into Icechunk sessions: arrays, references, copied slabs.

References go from their columns to ``set_virtual_refs`` a block at a time, so a commit
never holds more than a block of them as Python objects.  Icechunk itself keeps about 250
bytes per reference in a session until it commits, so a plan of more than
``part_references`` references is written in parts: each part is committed to a work
branch, and the branch the readers see moves to the last part at once, or not at all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import icechunk
import numpy as np
import zarr
from xarray.backends.zarr import FillValueCoder
from zarr.core.sync import sync

from nc2ice.combine.plan import ArrayPlan, Plan
from nc2ice.errors import CommitError
from nc2ice.logs import Progress
from nc2ice.model.codecs import zarr_pipeline
from nc2ice.model.refs import ChunkRefs

log = logging.getLogger(__name__)
BLOCK = 100_000  # references per call to set_virtual_refs
PART_REFERENCES = 2_000_000  # a session holding more would take more than ~500 MB
SMALL_VALUES = 1 << 20  # values of arrays up to this size are put with their metadata


class Writer:
    """A writable session on ``branch`` that commits a part when it holds enough.

    A part is committed before the next block is written, never after the last one: the
    final commit, which carries the message and metadata, always has changes to commit."""

    def __init__(self, repo: icechunk.Repository, branch: str, part_references: int, label: str):
        self.repo, self.branch, self.label = repo, branch, label
        self.part_references = part_references
        self.session = repo.writable_session(branch)
        self.pending = 0
        self.parts: list[str] = []

    @property
    def store(self) -> Any:
        return self.session.store

    def room(self) -> None:
        """Make room for another block: commit a part if the session holds enough."""
        if self.pending < self.part_references:
            return
        self.parts.append(self.session.commit(f"{self.label}: part {len(self.parts) + 1}"))
        log.info("%s: part %d committed to %s", self.label, len(self.parts), self.branch)
        self.session = self.repo.writable_session(self.branch)
        self.pending = 0

    def written(self, references: int) -> None:
        self.pending += references

    def commit(self, message: str, metadata: dict[str, Any]) -> str:
        return self.session.commit(message, metadata=metadata)


def layout(array: ArrayPlan) -> dict[str, Any]:
    """dtype and codecs of the store's array: the files' own where the store references
    them, Zarr's defaults where its chunks are all written by the commit."""
    if array.data is not None:
        dtype = array.data.dtype
        return {"dtype": dtype, "filters": None, "serializer": "auto", "compressors": "auto"}
    template = array.template
    dtype = template.np_dtype
    if not template.referenceable:
        return {"dtype": dtype, "filters": None, "serializer": "auto", "compressors": "auto"}
    filters, serializer, compressors = zarr_pipeline(dtype, template.filters, template.compressor)
    return {
        "dtype": dtype,
        "filters": filters,
        "serializer": serializer,
        "compressors": compressors,
    }


def create_array(root: zarr.Group, array: ArrayPlan, how: dict[str, Any]) -> zarr.Array:
    template = array.template
    dtype = how["dtype"]
    attrs = store_attrs(template.attrs)
    fill = template.attrs.get("_FillValue")
    if fill is not None and dtype.kind in "biufc":
        attrs["_FillValue"] = FillValueCoder.encode(fill, dtype) if dtype.kind in "fc" else fill
    elif fill is not None and dtype.kind in "SUOT" and "missing_value" not in attrs:
        # xarray cannot open a Zarr array whose _FillValue attribute is text (nor a record);
        # missing_value masks the same values for readers
        attrs["missing_value"] = fill
    raw_fill = template.storage_fill if template.storage_fill is not None else fill
    parent = root.require_group(template.group) if template.group else root
    return parent.create_array(
        name=template.name,
        shape=array.shape,
        chunks=array.chunks,
        fill_value=_zarr_fill(raw_fill, dtype),
        dimension_names=template.dims,
        attributes=attrs,
        **how,
    )


def put_nodes(store: Any, plan: Plan, group: str) -> set[str]:
    """Every group and array of ``plan`` in the dataset's ``group`` of ``store``, with the
    values of its small arrays; the paths of the arrays whose values were written.

    Built in memory and put in one go: Zarr creating arrays one by one in an Icechunk
    session reads every parent group's metadata for each, which costs ten times as much
    in a repository of a thousand datasets (whose root holds the index).  The groups above
    ``group`` are created only where there are none (the root's index is kept), and must
    be groups: Icechunk itself would put a group under an array."""
    documents: dict[str, Any] = {}
    root = zarr.open_group(
        zarr.storage.MemoryStore(store_dict=documents),
        path=group or None,
        mode="w",
        zarr_format=3,
    )
    for name, attrs in plan.group_attrs.items():
        (root.require_group(name) if name else root).attrs.update(store_attrs(attrs))
    valued = set()
    for path, array in plan.arrays.items():
        zarray = create_array(root, array, layout(array))
        if array.data is not None and array.data.nbytes <= SMALL_VALUES:
            zarray[...] = array.data
            valued.add(path)
    inside = f"{group}/" if group else ""
    above = [k for k in documents if not k.startswith(inside)]
    nodes = [k for k in documents if k.endswith("zarr.json") and k not in above]
    chunks = documents.keys() - {*above, *nodes}

    async def put() -> None:
        prototype = zarr.core.buffer.default_buffer_prototype()
        found = await asyncio.gather(*(store.get(k, prototype=prototype) for k in above))
        for key, doc in zip(above, found, strict=True):
            if doc is not None and json.loads(doc.to_bytes()).get("node_type") != "group":
                raise CommitError(
                    f"{key.removesuffix('zarr.json') or 'the root'} is an array, not "
                    f"a group: the dataset's group {group!r} cannot be put under it"
                )
        await asyncio.gather(*(store.set_if_not_exists(k, documents[k]) for k in above))
        for depth in sorted({k.count("/") for k in nodes}):  # a group before its members
            level = [k for k in nodes if k.count("/") == depth]
            await asyncio.gather(*(store.set(k, documents[k]) for k in level))
        # an array before its chunks: Icechunk refuses chunks of an array it does not have
        await asyncio.gather(*(store.set(k, documents[k]) for k in chunks))

    sync(put())
    return valued


def write_references(
    writer: Writer,
    path: str,
    refs: ChunkRefs,
    checksums: dict[str, str | datetime],
    start: int = 0,
) -> int:
    """Set the references of ``path`` from grid index ``start`` along the first axis on."""
    per_url = [_checksum(url, checksums) for url in refs.urls]
    count = 0
    total = int((refs.lengths[start:] > 0).sum()) if refs.grid else len(refs)
    progress = Progress(f"{writer.label}: {path!r}: references set:", total)
    for index, files, offsets, lengths in _blocks(refs, start):
        specs = [
            icechunk.VirtualChunkSpec(
                index=i, location=refs.urls[f], offset=o, length=n, **per_url[f]
            )
            for i, f, o, n in zip(index, files, offsets, lengths, strict=True)
        ]
        writer.room()
        refused = writer.store.set_virtual_refs(path, specs, validate_containers=True)
        if refused:
            where = tuple(refused[0])
            raise CommitError(
                f"Icechunk refused {len(refused)} reference(s) of {path!r}, e.g. chunk {where} "
                f"in {refs.get(where, ('?',))[0]}: no virtual chunk container of the "
                "repository matches that URL"
            )
        count += len(specs)
        writer.written(len(specs))
        progress(count)
    return count


def _blocks(refs: ChunkRefs, start: int) -> Iterator[tuple[list, list, list, list]]:
    """(indices, file ids, offsets, lengths) of the written chunks, a block at a time."""
    if not refs.grid:
        if refs.lengths[()]:
            yield [[]], [int(refs.file[()])], [int(refs.offsets[()])], [int(refs.lengths[()])]
        return
    rows = max(1, BLOCK // max(1, math.prod(refs.grid[1:])))
    for g0 in range(start, refs.grid[0], rows):
        lengths = refs.lengths[g0 : g0 + rows]
        where = np.nonzero(lengths)
        if not where[0].size:
            continue
        index = np.stack(where, axis=1)
        index[:, 0] += g0
        yield (
            index.tolist(),
            refs.file[g0 : g0 + rows][where].tolist(),
            refs.offsets[g0 : g0 + rows][where].tolist(),
            lengths[where].tolist(),
        )


def write_copies(
    writer: Writer,
    path: str,
    array: ArrayPlan,
    reader: Callable[[Any, tuple[slice, ...]], np.ndarray],
    start: int = 0,
) -> int:
    """Write the slabs the plan copies (from grid index ``start`` on); their bytes."""
    copied = 0
    step = array.chunks[0] if array.chunks else 1
    for lo, hi in array.copy_slabs():
        if lo // step < start:
            continue
        zarray = zarr.open_array(writer.store, path=path, mode="r+", zarr_format=3)
        values = _slab(array, lo, hi, np.dtype(zarray.dtype), reader)
        zarray[lo:hi] = values
        copied += values.nbytes
    return copied


def _slab(array: ArrayPlan, lo: int, hi: int, dtype: np.dtype, reader) -> np.ndarray:
    out = np.empty((hi - lo, *array.shape[1:]), dtype=dtype)
    for part in array.parts:
        a, b = max(lo, part.offset), min(hi, part.offset + part.var.shape[0])
        if a >= b:
            continue
        region = (slice(a - part.offset, b - part.offset),) + tuple(
            slice(0, n) for n in array.shape[1:]
        )
        out[a - lo : b - lo] = reader(part.var, region)
    return out


def _checksum(url: str, checksums: dict[str, str | datetime]) -> dict[str, Any]:
    value = checksums.get(url)
    if isinstance(value, str):
        return {"etag_checksum": value}
    return {"last_updated_at_checksum": value}


def store_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes as Icechunk can hold them: its metadata is strict JSON, which has no NaN or
    Infinity, so such floats are written as the strings "NaN", "Infinity", "-Infinity" (the
    spelling Zarr uses for fill values); ``nonfinite_attributes`` lists them."""
    return {k: _finite(v) for k, v in attrs.items() if k != "_FillValue"}


def nonfinite_attributes(attrs: dict[str, Any]) -> list[str]:
    return sorted(k for k, v in attrs.items() if k != "_FillValue" and _finite(v) != v)


def _finite(value: Any) -> Any:
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _zarr_fill(fill: Any, dtype: np.dtype) -> Any:
    """A fill value as Zarr takes it for ``dtype`` (a record's from its JSON list of fields)."""
    if fill is None:
        return None
    if dtype.names:
        return np.array(tuple(fill) if isinstance(fill, list) else fill, dtype=dtype)[()]
    if dtype.kind == "S":
        return fill.encode() if isinstance(fill, str) else fill
    if dtype.kind in "UOT":
        return fill
    return np.array(fill).astype(dtype).item()
