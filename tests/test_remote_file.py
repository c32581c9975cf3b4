"""The scan's reader: the head in one request, later reads in blocks, ranges merged."""

from __future__ import annotations

import io

import pytest
from obstore.store import LocalStore

from nc2ice.remote_file import NeedBytes, SourceReader


@pytest.fixture
def blob(tmp_path):
    data = bytes(range(256)) * 4096  # 1 MiB
    (tmp_path / "blob").write_bytes(data)
    return data, str(tmp_path / "blob")


def test_head_tail_and_a_read_across_them_cost_two_requests(blob):
    data, path = blob
    reader = SourceReader(LocalStore(), path, head_bytes=1000, block_bytes=4096)
    assert reader.read(10) == data[:10] and reader.length() == len(data)
    reader.fetch_tail(len(data) - 1000)
    reader.seek(990)
    assert reader.read(100) == data[990:1090]  # spans head and tail: merged, no request
    reader.seek(-5, io.SEEK_END)
    assert reader.read() == data[-5:]
    assert reader.requests == 2 and reader.bytes_read == len(data)


def test_a_reader_that_may_not_fetch_says_what_it_needs(blob):
    data, path = blob
    reader = SourceReader(LocalStore(), path, head_bytes=1000)
    reader.fetch_head()
    reader.may_fetch = False
    reader.seek(500_000)
    with pytest.raises(NeedBytes) as need:
        reader.read(10)
    need.value.fetch()
    reader.seek(500_000)
    assert reader.read(10) == data[500_000:500_010] and reader.requests == 2


def test_prefetch_reads_close_ranges_in_one_request(blob):
    data, path = blob
    reader = SourceReader(LocalStore(), path, head_bytes=100)
    reader.fetch_head()
    reader.prefetch([(200_000, 10), (200_500, 10), (900_000, 10)], gap=1000)
    assert reader.requests == 3  # the head, one for the two close ranges, one for the far
    reader.may_fetch = False
    reader.seek(200_505)
    assert reader.read(5) == data[200_505:200_510]
