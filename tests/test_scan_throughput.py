"""Archive-scale scanning (issue 7): batches, requests counted by the server, per-server caps."""

from __future__ import annotations

import pytest
from archives import clean
from conftest import commit_record, run_workflow
from servers import HTTPServer, most_at_once

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def other_host(tmp_path_factory):
    """A second web server, on 127.0.0.2: another host as far as any client can tell."""
    server = HTTPServer(tmp_path_factory.mktemp("other-host"), host="127.0.0.2").start()
    yield server
    server.stop()


def test_batches_requests_and_reruns(tmp_path, http_server, http_root):
    files = clean(http_root / "batched", years=range(2000, 2012))
    urls = [f"{http_server.url}/batched/{f.name}" for f in files]
    dataset = {"sources": urls[:11], "batch_size": 5}
    config = {"datasets": {"web": dataset}, "store": {"root": str(tmp_path / "stores")}}
    results = tmp_path / "run" / "results" / "web"

    http_server.reset_counts()
    run_workflow(tmp_path / "run", config, "results/web/commit.json")
    # One manifest per file, a folder per batch of at most five files.
    folders = sorted(p.name for p in (results / "manifests").iterdir() if p.is_dir())
    assert folders == ["b00000", "b00001", "b00002"]
    assert len(list((results / "manifests").glob("b*/*.json"))) == 11
    # New files cost no HEAD; the first request of a scan, for the file's head, holds all
    # of these small files (benchmarks/README.md counts larger ones: two requests).
    assert http_server.requests["HEAD"] == 0
    gets = [http_server.per_path[f"/batched/{f.name}"] for f in files[:11]]
    assert gets == [1] * 11, gets
    lists = {p.name: p.read_text() for p in (results / "batches").glob("*.tsv")}

    # A file more: it joins the last batch; the other batches' lists do not change.
    dataset["sources"] = urls
    rerun = run_workflow(tmp_path / "run", config, "results/web/commit.json").stderr
    assert rerun.count("rule scan:") == 1 and "wildcards: dataset=web, batch=b00002" in rerun
    now = {p.name: p.read_text() for p in (results / "batches").glob("*.tsv")}
    assert now["b00000.tsv"] == lists["b00000.tsv"] and now["b00001.tsv"] == lists["b00001.tsv"]
    assert files[-1].stem in now["b00002.tsv"]
    assert len(commit_record(tmp_path / "run", "web")["files"]) == 12


def test_each_server_has_its_own_connection_cap(tmp_path, http_server, http_root, other_host):
    clean(http_root / "capped", years=range(2000, 2008))
    clean(other_host.root / "capped", years=range(2000, 2008))
    config = {
        "datasets": {
            name: {
                "sources": [f"{server.url}/capped/tas_{y}.nc" for y in range(2000, 2008)],
                "batch_size": 2,
            }
            for name, server in (("here", http_server), ("there", other_host))
        },
        "store": {"root": str(tmp_path / "stores")},
        "http": {"max_connections": 2, "connections_per_job": 1},
    }
    for server in (http_server, other_host):
        server.reset_counts()
        server.delay_s = 0.05
    try:
        run_workflow(tmp_path / "run", config, "--cores", "6")
    finally:
        http_server.delay_s = other_host.delay_s = 0.0
    assert http_server.max_active <= 2 and other_host.max_active <= 2
    # Under one cap for all servers, never more than 2 at once; here each has its own.
    assert most_at_once(http_server, other_host) > 2
