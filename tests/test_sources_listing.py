"""What a rerun's listing makes of the world (issue 14, items 7, 10-12): files gone or
dropped on purpose, files a scan skipped tried again, settings that do not change the store."""

from __future__ import annotations

import archives
import pytest

from nc2ice import config as config_mod
from nc2ice.access import Access, normalize_url
from nc2ice.errors import AccessError
from nc2ice.model.index import Scanned, write_index
from nc2ice.scan.scanner import scan_batch
from nc2ice.sources.files import read_table
from nc2ice.sources.listing import list_dataset


def _config(sources: list, **options) -> dict:
    ds = {
        "sources": sources,
        "on_error": "fail",
        "on_vanished": "fail",
        "batch_size": 250,
        **options,
    }
    return {"datasets": {"d": ds}, "http": {"max_connections": 4}}


def _list(tmp_path, config):
    results = tmp_path / "results" / "d"
    return list_dataset(config, "d", results / "sources.tsv", results / "batches")


def test_on_vanished_drop_drops_a_url_that_is_gone_without_on_error_skip(
    tmp_path, http_server, http_root
):
    files = archives.clean(http_root / "vanish", years=(2000, 2001))
    urls = [f"{http_server.url}/vanish/{f.name}" for f in files]
    _list(tmp_path, _config(urls))
    files[1].unlink()
    with pytest.raises(AccessError, match="1 file\\(s\\) listed before are gone: .*tas_2001.nc"):
        _list(tmp_path, _config(urls))
    listing = _list(tmp_path, _config(urls, on_vanished="drop"))
    assert [s.url for s in listing.gone] == [urls[1]]
    assert [s.url for s in listing.sources] == [urls[0]]


def test_a_file_a_scan_skipped_is_tried_again(tmp_path):
    archives.clean(tmp_path / "src", years=(2000, 2001))
    config = _config([str(tmp_path / "src" / "*.nc")], on_error="skip")
    results = tmp_path / "results" / "d"
    _list(tmp_path, config)
    batch = results / "batches" / "b00000.tsv"
    rows = scan_batch(
        read_table(batch),
        results / "manifests" / "b00000",
        Access(),
        inline_limit=0,
        connections=1,
        head_bytes=1 << 16,
        on_error="skip",
    )
    # The state a transient fault leaves: the scan skipped the file, which did not change.
    rows[1] = Scanned(rows[1].file_id, rows[1].url, skipped="cannot read (the server answered 503)")
    write_index(rows, results / "manifests" / "b00000.tsv")
    (results / "manifests" / "b00000" / "tas_2001.json").unlink()
    listing = _list(tmp_path, config)
    assert [s.file_id for s in listing.retried] == ["tas_2001"]
    assert listing.batches_changed == ["b00000"]  # its batch is scanned again
    assert [s.tries for s in read_table(batch)] == [0, 1]
    scanned = scan_batch(
        read_table(batch),
        results / "manifests" / "b00000",
        Access(),
        inline_limit=0,
        connections=1,
        head_bytes=1 << 16,
        on_error="skip",
    )
    assert [(r.reused, r.skipped) for r in scanned] == [(True, ""), (False, "")]


def test_settings_that_do_not_change_the_store_do_not_rewrite_it():
    base = {"sources": ["a/*.nc"], "concat_dim": "time", "drop_variables": []}
    other = {
        **base,
        "sources": ["a/*.nc", "b.nc"],
        "on_error": "skip",
        "on_vanished": "drop",
        "head_bytes": 1024,
        "batch_size": 3,
        "sample_chunks": 9,
        "inline_threshold": 0,
        "max_materialized_fraction": 0.5,
        "on_chunk_mismatch": "error",
    }
    assert config_mod.store_settings(other) == config_mod.store_settings(base)
    assert config_mod.store_settings({**base, "concat_order": "listed"}) != (
        config_mod.store_settings(base)
    )
    checked = config_mod.commit_settings(other)
    assert checked["max_materialized_fraction"] == 0.5  # a limit reruns the commit's check


def test_sources_files_are_named_by_the_entry_that_lists_them(tmp_path):
    archives.clean(tmp_path / "src", years=(2000, 2001))
    glob = str(tmp_path / "src" / "*.nc")
    listing = _list(tmp_path, _config([glob]))
    assert {s.origin for s in listing.sources} == {glob}
    assert listing.sources[0].url == normalize_url(str(tmp_path / "src" / "tas_2000.nc"))


def test_listed_order_holds_for_files_added_on_a_rerun(tmp_path):
    """`concat_order: listed` with files that arrived later (a new batch): the commit takes
    the order the listing gives, not the order of the batches (it ran 2001, 2002, 2000, 2003)."""
    from nc2ice.sources.files import Source, write_table
    from nc2ice.store.dataset import prepare

    files = archives.restarting_counter(tmp_path / "src")  # nemo_0, nemo_1, nemo_2
    sources = [Source(f.stem, normalize_url(str(f))) for f in files]
    results = tmp_path / "results" / "d"
    indexes = []
    for batch, members in (("b00000", sources[1:]), ("b00001", sources[:1])):  # 0 came later
        rows = scan_batch(
            members,
            results / "manifests" / batch,
            Access(),
            inline_limit=0,
            connections=1,
            head_bytes=1 << 16,
            on_error="fail",
        )
        write_index(rows, results / "manifests" / f"{batch}.tsv")
        indexes.append(str(results / "manifests" / f"{batch}.tsv"))
    write_table(sources, results / "sources.tsv")
    ds = {
        "concat_dim": "time_counter",
        "concat_order": "listed",
        "variables": "all",
        "drop_variables": [],
        "on_chunk_mismatch": "reconcile",
        "max_materialized_fraction": 0.1,
    }
    config = {"datasets": {"d": ds}, "store": {"root": str(tmp_path / "stores")}}
    prepared = prepare(config, "d", indexes, str(results / "sources.tsv"))
    assert prepared.plan.files == ["nemo_0", "nemo_1", "nemo_2"]
