"""A file-like view of a remote source that reads its head in one request.

Scanning a file reads its metadata: the superblock and object headers near the start and,
in files written step by step, chunk indexes further on.  The first request fetches the
head (``head_bytes``) and tells the exact size, ETag and Last-Modified of the object (no
HEAD request); later reads that miss fetch one block around the offset.  Requests and bytes
are counted, so the scan log can say what a file cost.

Every read after the first is tied to the version the first response named (a conditional
request: If-Match on a strong ETag, else If-Unmodified-Since; and the response's version is
checked), or from the start to a version given (``version``: what the scan recorded, for the
commit's and the validation's reads).  A file replaced meanwhile is refused in one line,
"changed while it was read", never parsed as a mix of two versions.  A local file's size and
time are checked before the first read and after every read.
"""

from __future__ import annotations

import bisect
import io
from typing import Any

import obstore

from nc2ice.access import (
    changed_error,
    differences,
    local_identity,
    local_path,
    merged_spans,
    read_tied,
)

HEAD_BYTES = 256 << 10
BLOCK_BYTES = 256 << 10


class NeedBytes(Exception):  # noqa: N818 - a request for bytes, not an error
    """Raised by a reader that may not fetch by itself: the parser needs these bytes."""

    def __init__(self, reader: SourceReader, start: int, end: int):
        super().__init__(f"bytes {start}-{end} of {reader.path} are not fetched yet")
        self.reader, self.start, self.end = reader, start, end

    def fetch(self) -> SourceReader:
        self.reader.fetch(self.start, self.end)
        return self.reader


class SourceReader(io.RawIOBase):
    def __init__(
        self,
        store: Any,
        path: str,
        *,
        head_bytes: int = HEAD_BYTES,
        block_bytes: int = BLOCK_BYTES,
        url: str | None = None,
        version: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.store, self.path = store, path
        self.url = url or path  # what errors name
        self.pinned = dict(version) if version else None  # the version every read must see
        self.head_bytes, self.block_bytes = head_bytes, block_bytes
        self.pos = 0
        # False while a batch scan parses: a miss raises NeedBytes, and the request is made
        # outside the parser (h5py holds a lock while it calls read, which would serialise
        # every thread's requests behind it).
        self.may_fetch = True
        self.size: int | None = None
        self.meta: dict[str, Any] = {}
        self.requests = 0
        self.bytes_read = 0
        self._starts: list[int] = []  # sorted starts of the cached segments
        self._segments: dict[int, bytes] = {}

    # -- what h5py and the netCDF3 parser call ----------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            offset += self.length()
        elif whence == io.SEEK_CUR:
            offset += self.pos
        self.pos = max(0, offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, n: int = -1) -> bytes:
        if self.size is None:
            self._fetch_head()
        assert self.size is not None
        end = self.size if n is None or n < 0 else min(self.pos + n, self.size)
        if end <= self.pos:
            return b""
        data = self._cached(self.pos, end)
        if data is None:
            if not self.may_fetch:
                raise NeedBytes(self, self.pos, end)
            self.fetch(self.pos, end)
            data = self._cached(self.pos, end)
            assert data is not None
        self.pos = end
        return data

    def length(self) -> int:
        if self.size is None:
            self._fetch_head()
        assert self.size is not None
        return self.size

    # -- fetching ----------------------------------------------------------------------------

    def fetch_head(self) -> SourceReader:
        """One ranged GET for the head; the response says how large the object is."""
        if self.size is None:
            self._fetch_head()
        return self

    def fetch_tail(self, n: int) -> SourceReader:
        """The last ``n`` bytes, where the head did not reach them."""
        size = self.length()
        start = max(self.head_bytes, size - n)
        if start < size:
            self._add(start, self._get(start, size))
        return self

    def _fetch_head(self) -> None:
        data = self._get(0, self.head_bytes)
        self.size = self.meta["size"]
        self._add(0, data)

    def _get(self, start: int, end: int) -> bytes:
        """One request, tied to the version this reader reads (the first names it)."""
        if self.url.startswith("file://"):
            return self._get_local(start, end)
        data, meta = read_tied(
            self.store, self.path, start, end, self.meta or self.pinned, self.url
        )
        self.meta = self.meta or meta
        return data

    def _get_local(self, start: int, end: int) -> bytes:
        if not self.meta:
            self.meta = self._local_version(self.pinned)
        data = bytes(obstore.get(self.store, self.path, options={"range": (start, end)}).bytes())
        self._local_version(self.meta)
        return data

    def _local_version(self, version: dict[str, Any] | None) -> dict[str, Any]:
        now = local_identity(local_path(self.url))
        if version and (what := differences(version, now)):
            raise changed_error(self.url, version, what)
        return now

    def prefetch(self, ranges: list[tuple[int, int]], gap: int = 1 << 20) -> SourceReader:
        """Fetch what is not cached yet of (offset, length) ranges: ranges closer than
        ``gap`` are read by one request, one request after the other."""
        wanted = ((o, o + n) for o, n in ranges if n and self._cached(o, o + n) is None)
        for start, end in merged_spans(wanted, gap):
            self._add(start, self._get(start, end))
        return self

    def fetch(self, start: int, end: int) -> None:
        """The block around [start, end), less what neighbouring cached ranges hold."""
        assert self.size is not None
        lo = start - start % self.block_bytes
        hi = min(self.size, max(end, lo + self.block_bytes))
        i = bisect.bisect_right(self._starts, start)
        if i:  # the cached range before: start after it
            before = self._starts[i - 1] + len(self._segments[self._starts[i - 1]])
            lo = max(lo, min(before, start))
        if i < len(self._starts):  # the cached range after: stop before it
            hi = min(hi, max(self._starts[i], end))
        self._add(lo, self._get(lo, hi))

    def _add(self, start: int, data: bytes) -> None:
        """Cache a fetched range, merged with the ranges it touches (a read may span them)."""
        self.requests += 1
        self.bytes_read += len(data)
        end = start + len(data)
        i = bisect.bisect_left(self._starts, start)
        if i and self._starts[i - 1] + len(self._segments[self._starts[i - 1]]) >= start:
            i -= 1
        pieces = []
        while i < len(self._starts) and self._starts[i] <= end:
            seg_start = self._starts.pop(i)
            pieces.append((seg_start, self._segments.pop(seg_start)))
        merged_start = min([start, *(p for p, _ in pieces)])
        merged_end = max([end, *(p + len(d) for p, d in pieces)])
        buffer = bytearray(merged_end - merged_start)
        for seg_start, seg in [*pieces, (start, data)]:
            buffer[seg_start - merged_start : seg_start - merged_start + len(seg)] = seg
        bisect.insort(self._starts, merged_start)
        self._segments[merged_start] = bytes(buffer)

    def _cached(self, start: int, end: int) -> bytes | None:
        """Bytes [start, end) from one cached segment, or None."""
        i = bisect.bisect_right(self._starts, start) - 1
        while i >= 0:
            seg_start = self._starts[i]
            segment = self._segments[seg_start]
            if seg_start + len(segment) >= end:
                return segment[start - seg_start : end - seg_start]
            i -= 1
        return None
