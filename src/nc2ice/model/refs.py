"""Chunk references in columns, as VirtualiZarr's ChunkManifest keeps them.

An array's references are three numpy arrays shaped like its chunk grid: which file (an
index into ``urls``), the byte offset and the length (0 where there is no chunk), so a
reference costs 20 bytes instead of a Python tuple's kilobyte, and combining a thousand
files is slicing, not a loop over dictionaries.  The mapping methods (``items``, ``get``,
``in``) serve code that looks at a few chunks; bulk work uses the columns.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

Index = tuple[int, ...]
Ref = tuple[str, int, int]


class ChunkRefs:
    __slots__ = ("file", "lengths", "offsets", "urls")

    def __init__(
        self,
        urls: list[str],
        file: np.ndarray,
        offsets: np.ndarray,
        lengths: np.ndarray,
    ):
        self.urls, self.file, self.offsets, self.lengths = urls, file, offsets, lengths

    @classmethod
    def empty(cls, grid: tuple[int, ...], urls: list[str] | None = None) -> ChunkRefs:
        return cls(
            list(urls or []),
            np.zeros(grid, dtype=np.int32),
            np.zeros(grid, dtype=np.int64),
            np.zeros(grid, dtype=np.int64),
        )

    @classmethod
    def from_mapping(cls, grid: tuple[int, ...], refs: Mapping[Index, Ref]) -> ChunkRefs:
        out = cls.empty(grid)
        for index, (url, offset, length) in refs.items():
            out.set(index, url, offset, length)
        return out

    def url_id(self, url: str) -> int:
        """The index of ``url`` in ``urls``, added if new."""
        try:
            return self.urls.index(url)
        except ValueError:
            self.urls.append(url)
            return len(self.urls) - 1

    def set(self, index: Index, url: str, offset: int, length: int) -> None:
        index = index or ()
        self.file[index], self.offsets[index], self.lengths[index] = (
            self.url_id(url),
            offset,
            length,
        )

    @property
    def grid(self) -> tuple[int, ...]:
        return self.lengths.shape

    def copy(self) -> ChunkRefs:
        return ChunkRefs(
            list(self.urls), self.file.copy(), self.offsets.copy(), self.lengths.copy()
        )

    # -- a mapping from chunk index to (url, offset, length) ---------------------------------

    def __len__(self) -> int:
        return int(np.count_nonzero(self.lengths))

    def __bool__(self) -> bool:
        return bool(self.lengths.any())

    def __contains__(self, index: object) -> bool:
        return self.get(index) is not None  # type: ignore[arg-type]

    def __getitem__(self, index: Index) -> Ref:
        ref = self.get(index)
        if ref is None:
            raise KeyError(index)
        return ref

    def get(self, index: Index, default: Any = None) -> Any:
        if len(index) != self.lengths.ndim or any(
            not 0 <= i < n for i, n in zip(index, self.grid, strict=True)
        ):
            return default
        length = int(self.lengths[index])
        if not length:
            return default
        return (self.urls[int(self.file[index])], int(self.offsets[index]), length)

    def keys(self) -> Iterator[Index]:
        if self.lengths.ndim == 0:
            yield from [()] if self.lengths[()] else []
            return
        for index in zip(*np.nonzero(self.lengths), strict=True):
            yield tuple(int(i) for i in index)

    def items(self) -> Iterator[tuple[Index, Ref]]:
        for index in self.keys():
            yield (
                index,
                (
                    self.urls[int(self.file[index])],
                    int(self.offsets[index]),
                    int(self.lengths[index]),
                ),
            )

    def values(self) -> Iterator[Ref]:
        for _, ref in self.items():
            yield ref

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping | ChunkRefs):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"ChunkRefs({len(self)} of {self.lengths.size} chunks, {len(self.urls)} file(s))"
