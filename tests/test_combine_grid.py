"""Chunk-grid reconciliation: every reference the planner makes must point at the right bytes."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nc2ice.combine.grid import Fate, Part, plan_grid, template_of
from nc2ice.model.manifest import Variable

URL = "mem://file"


def _file(
    values: np.ndarray,
    chunks: tuple[int, ...],
    buffer: bytearray,
    name: str,
    compressed: bool = False,
) -> Variable:
    """Store ``values`` chunk by chunk (edge chunks padded, as HDF5 does) into ``buffer``."""
    grid = [math.ceil(s / c) for s, c in zip(values.shape, chunks)]
    refs = {}
    for index in np.ndindex(*grid):
        block = np.zeros(chunks, dtype=values.dtype)
        sel = tuple(
            slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(index, chunks, values.shape)
        )
        block[tuple(slice(0, s.stop - s.start) for s in sel)] = values[sel]
        refs[index] = (f"{URL}/{name}", len(buffer), block.nbytes)
        buffer.extend(block.tobytes())
    return Variable(
        path="v",
        dims=("time", "y"),
        shape=values.shape,
        chunks=chunks,
        dtype=values.dtype.str,
        attrs={},
        compressor={"id": "zlib", "level": 1} if compressed else None,
        refs=refs,
        virtual=True,
    )


def _assemble(plan, shape, buffer: bytes, truth: np.ndarray) -> np.ndarray:
    out = np.full(shape, np.nan)
    for index, (_, offset, length) in plan.refs.items():
        block = np.frombuffer(buffer[offset : offset + length], dtype="<f8").reshape(plan.chunks)
        sel = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(index, plan.chunks, shape))
        out[sel] = block[tuple(slice(0, s.stop - s.start) for s in sel)]
    step = plan.chunks[0]
    for g in plan.copy:
        out[g * step : (g + 1) * step] = truth[g * step : (g + 1) * step]
    return out


def _parts(lengths, chunkings, width, compressed=()):
    truth = np.arange(sum(lengths) * width, dtype="<f8").reshape(-1, width)
    buffer, parts, offset = bytearray(), [], 0
    for i, (n, c) in enumerate(zip(lengths, chunkings)):
        var = _file(truth[offset : offset + n], c, buffer, str(i), compressed=i in compressed)
        parts.append(Part(f"f{i}", var, offset))
        offset += n
    return truth, bytes(buffer), parts


def test_aligned_files_are_referenced_as_they_are():
    truth, buffer, parts = _parts([12, 12, 12], [(6, 4)] * 3, 4, compressed={0, 1, 2})
    plan = plan_grid(parts, 0, truth.shape, template_of(parts))
    assert plan.chunks == (6, 4) and plan.copy == []
    assert all(c[Fate.AS_IS] == 2 for c in plan.fates.values())


def test_uncompressed_uneven_files_are_split_not_copied():
    truth, buffer, parts = _parts([12, 12, 12, 6], [(6, 4), (12, 4), (4, 4), (6, 4)], 4)
    plan = plan_grid(parts, 0, truth.shape, template_of(parts))
    assert plan.copy == [] and plan.chunks == (2, 4)
    np.testing.assert_array_equal(_assemble(plan, truth.shape, buffer, truth), truth)


def test_short_compressed_last_file_is_copied_exactly():
    truth, buffer, parts = _parts([12, 12, 5], [(6, 4), (6, 4), (5, 4)], 4, compressed={0, 1, 2})
    plan = plan_grid(parts, 0, truth.shape, template_of(parts))
    assert plan.chunks == (6, 4)
    assert plan.copy == [4]
    assert plan.copied_bytes == {"f0": 0, "f1": 0, "f2": 5 * 4 * 8}


@settings(max_examples=150, deadline=None)
@given(
    files=st.lists(st.tuples(st.integers(1, 13), st.integers(1, 13)), min_size=1, max_size=5),
    width=st.integers(1, 5),
    split_width=st.booleans(),
)
def test_any_uncompressed_archive_reads_back_exactly(files, width, split_width):
    lengths = [n for n, _ in files]
    chunkings = [(min(c, n), width if not split_width else max(1, width // 2)) for n, c in files]
    truth, buffer, parts = _parts(lengths, chunkings, width)
    plan = plan_grid(parts, 0, truth.shape, template_of(parts))
    np.testing.assert_array_equal(_assemble(plan, truth.shape, buffer, truth), truth)


@settings(max_examples=100, deadline=None)
@given(
    files=st.lists(
        st.tuples(st.integers(1, 13), st.integers(1, 13), st.booleans()), min_size=1, max_size=5
    )
)
def test_any_mixed_archive_reads_back_exactly(files):
    lengths = [n for n, _, _ in files]
    chunkings = [(min(c, n), 3) for n, c, _ in files]
    compressed = {i for i, (_, _, z) in enumerate(files) if z}
    truth, buffer, parts = _parts(lengths, chunkings, 3, compressed)
    template = template_of(parts)
    plan = plan_grid(parts, 0, truth.shape, template)
    for index, (url, _, _) in plan.refs.items():
        part = next(p for p in parts if url.endswith(f"/{p.file_id[1:]}"))
        assert (part.var.compressor is None) == (template.compressor is None), index
    if template.compressor is None:
        np.testing.assert_array_equal(_assemble(plan, truth.shape, buffer, truth), truth)
