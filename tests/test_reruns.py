"""Reruns that see the world (issue 8): new, changed and removed sources, a run killed at any
point, a server that stops answering, and two runs committing to one repository at once."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from archives import clean, monthly, write
from conftest import (
    commit_record,
    read_back_in_new_process,
    run_workflow,
    start_workflow,
    validation,
)

from nc2ice.access import Access, normalize_url
from nc2ice.store.contents import read_index
from nc2ice.store.open import open_store_dataset
from nc2ice.store.repository import open_repository

pytestmark = pytest.mark.e2e


def _dataset_commits(store: str, access: Access | None = None) -> list[dict]:
    repo = open_repository(store, access or Access())
    return [
        {"id": s.id, **dict(s.metadata or {})}
        for s in repo.ancestry(branch="main")
        if (s.metadata or {}).get("dataset")
    ]


def test_a_new_file_on_s3_is_appended(tmp_path, s3_server):
    files = clean(tmp_path / "archive", years=(2000, 2001, 2002, 2003))
    s3 = s3_server.client()
    s3.create_bucket(Bucket="grows")
    for f in files[:3]:
        s3.upload_file(str(f), "grows", f"tas/{f.name}")
    s3_config = {"endpoint_url": s3_server.endpoint, "force_path_style": True}
    config = {
        "datasets": {"grows": {"sources": ["s3://grows/tas/*.nc"]}},
        "store": {"root": str(tmp_path / "stores")},
        "s3": s3_config,
    }
    run_workflow(tmp_path / "run", config, env=s3_server.env)
    first = commit_record(tmp_path / "run", "grows")
    assert first["action"] == "created"

    s3.upload_file(str(files[3]), "grows", f"tas/{files[3].name}")  # a new year arrives
    rerun = run_workflow(tmp_path / "run", config, env=s3_server.env).stderr
    assert rerun.count("rule scan:") == 1
    record = commit_record(tmp_path / "run", "grows")
    assert record["action"] == "appended"
    assert record["change"]["summary"] == "appended 1 file(s) (12 steps)"
    assert validation(tmp_path / "run", "grows")["passed"] is True
    commits = _dataset_commits(record["store"])
    assert len(commits) == 2 and commits[0]["change"]["appended"] == ["tas_2003"]
    repo = open_repository(record["store"], Access())
    assert {first["tag"], record["tag"]} <= set(repo.list_tags())
    read_back_in_new_process(record["store"], files, ["s3://grows/"], s3_server.endpoint)


def test_a_rewritten_source_is_refused_then_rescanned_alone(tmp_path, http_server, http_root):
    files = clean(http_root / "rewritten", years=(2000, 2001, 2002))
    urls = [f"{http_server.url}/rewritten/{f.name}" for f in files]
    config = {
        "datasets": {"web": {"sources": urls, "batch_size": 2}},
        "store": {"root": str(tmp_path / "stores")},
    }
    run_workflow(tmp_path / "run", config)
    store = commit_record(tmp_path / "run", "web")["store"]

    time.sleep(1.1)  # a new Last-Modified second, a new ETag
    write(monthly(2001, seed=99), files[1], tas={"zlib": True, "chunksizes": (6, 6, 8)})
    tas = open_store_dataset(store).tas
    with pytest.raises(Exception, match="tas_2001.nc"):
        _ = tas[12:24].values  # the file's chunks: refused, naming it
    assert float(tas[0:12].mean()) > 0  # the others still read

    rerun = run_workflow(tmp_path / "run", config).stderr
    assert "1 changed" in rerun and rerun.count("rule scan:") == 1
    index = (tmp_path / "run" / "results" / "web" / "manifests" / "b00000.tsv").read_text()
    assert "tas_2000" in index and "\tTrue\t" in index  # its batch mate was not rescanned
    record = commit_record(tmp_path / "run", "web")
    assert record["action"] == "rewritten" and record["change"]["rescanned"] == ["tas_2001"]
    assert "tas_2001 changed" in record["change"]["summary"]
    assert validation(tmp_path / "run", "web")["passed"] is True


def test_a_removed_source_stops_the_run_or_leaves_the_store(tmp_path):
    files = clean(tmp_path / "archive", years=(2000, 2001, 2002))
    config = {
        "datasets": {"tas": {"sources": [str(tmp_path / "archive" / "*.nc")]}},
        "store": {"root": str(tmp_path / "stores")},
    }
    run_workflow(tmp_path / "run", config)
    files[1].unlink()
    failed = run_workflow(tmp_path / "run", config, check=False)
    assert failed.returncode != 0
    assert "1 file(s) listed before are gone" in failed.stderr and "tas_2001.nc" in failed.stderr
    assert "on_vanished: drop" in failed.stderr

    config["datasets"]["tas"]["on_vanished"] = "drop"
    run_workflow(tmp_path / "run", config)
    record = commit_record(tmp_path / "run", "tas")
    assert record["change"]["dropped"] == ["tas_2001"]
    assert [f["file_id"] for f in record["files"]] == ["tas_2000", "tas_2002"]
    assert validation(tmp_path / "run", "tas")["passed"] is True


@pytest.mark.parametrize(
    "point", ["scan:manifest", "commit:written", "commit:committed", "validate:reading"]
)
def test_killed_anywhere_a_plain_rerun_completes(tmp_path, point):
    files = clean(tmp_path / "archive", years=(2000, 2001, 2002, 2003))
    config = {
        "datasets": {"tas": {"sources": [str(tmp_path / "archive" / "*.nc")], "batch_size": 2}},
        "store": {"root": str(tmp_path / "stores")},
    }
    marker = tmp_path / "paused"
    env = {"NC2ICE_PAUSE_AT": point, "NC2ICE_PAUSE_MARKER": str(marker)}
    run = start_workflow(tmp_path / "run", config, env)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert run.poll() is None, (tmp_path / "run" / "snakemake.out").read_text()[-3000:]
        assert time.monotonic() < deadline, f"the run never reached {point}"
        time.sleep(0.1)
    os.killpg(run.pid, signal.SIGKILL)  # snakemake and all its jobs
    run.wait()

    rerun = run_workflow(tmp_path / "run", config).stderr
    assert validation(tmp_path / "run", "tas")["passed"] is True
    store = normalize_url(str(tmp_path / "stores" / "tas.icechunk"))
    assert len(_dataset_commits(store)) == 1  # no duplicate snapshot
    assert "Directory cannot be locked" not in rerun
    read_back_in_new_process(store, files, [f"file://{tmp_path / 'archive'}/"])


def test_a_server_that_stops_answering_mid_scan(tmp_path, http_server, http_root):
    files = clean(http_root / "outage", years=range(2000, 2008))
    config = {
        "datasets": {
            "web": {
                "sources": [f"{http_server.url}/outage/{f.name}" for f in files],
                "batch_size": 2,
            }
        },
        "store": {"root": str(tmp_path / "stores")},
        "http": {"retries": 1, "timeout_s": 5, "max_connections": 1},
    }
    http_server.reset_counts()
    http_server.delay_s = 0.05

    def outage() -> None:  # the server goes away after a few files
        while sum(http_server.requests.values()) < 4:
            time.sleep(0.01)
        http_server.refuse = True

    watcher = threading.Thread(target=outage, daemon=True)
    watcher.start()
    try:
        failed = run_workflow(tmp_path / "run", config, check=False)
    finally:
        http_server.refuse, http_server.delay_s = False, 0.0
    assert failed.returncode != 0 and "cannot read" in failed.stderr
    assert not (tmp_path / "stores" / "web.icechunk").exists()
    run_workflow(tmp_path / "run", config)
    assert validation(tmp_path / "run", "web")["passed"] is True
    assert len(commit_record(tmp_path / "run", "web")["files"]) == 8


def _s3_repository_config(tmp_path, s3_server, datasets: dict) -> dict:
    return {
        "datasets": datasets,
        "store": {"repository": "s3://shared/all.icechunk"},
        "s3": {"endpoint_url": s3_server.endpoint, "force_path_style": True},
    }


def test_three_runs_commit_to_one_s3_repository_at_once(tmp_path, s3_server):
    """Three datasets of one repository, committed by three runs at once: none loses another's
    work, each commit names its dataset, and the root's index lists all three."""
    s3 = s3_server.client()
    s3.create_bucket(Bucket="shared")
    sources = {}
    years = {"first": (2000, 2001), "second": (2002, 2003), "third": (2004, 2005)}
    for name, span in years.items():
        sources[name] = [str(f) for f in clean(tmp_path / name, years=span)]
    # The first runs wait just before their commits while the later ones commit.
    waits = {"first": "6", "second": "3", "third": None}
    runs = {}
    for name, wait in waits.items():
        env = {"NC2ICE_PAUSE_AT": "commit:written", "NC2ICE_PAUSE_SECONDS": wait} if wait else {}
        config = _s3_repository_config(tmp_path, s3_server, {name: {"sources": sources[name]}})
        runs[name] = start_workflow(tmp_path / f"run-{name}", config, {**s3_server.env, **env})
        time.sleep(0.5)
    for name, run in runs.items():
        assert run.wait(300) == 0, (tmp_path / f"run-{name}" / "snakemake.out").read_text()[-3000:]
    access = Access.from_config(_s3_repository_config(tmp_path, s3_server, {}))
    commits = _dataset_commits("s3://shared/all.icechunk", access)
    assert sorted(c["dataset"] for c in commits) == sorted(runs)  # no lost update
    repo = open_repository("s3://shared/all.icechunk", access)
    messages = [s.message for s in repo.ancestry(branch="main")]
    assert all(any(m.startswith(f"{n}: ") for m in messages) for n in runs)
    index = read_index(repo)
    assert sorted(index) == sorted(runs)
    for name in runs:
        assert validation(tmp_path / f"run-{name}", name)["passed"] is True
        group = open_store_dataset("s3://shared/all.icechunk", access, group=name)
        assert group.sizes["time"] == 24
        published = json.loads((tmp_path / f"run-{name}/results/{name}/published.json").read_text())
        assert index[name]["snapshot"] == published["snapshot"]  # on main
        assert index[name]["validated_snapshot"] == published["validated_snapshot"]
        assert index[name]["range"][0].startswith(str(years[name][0]))
        assert index[name]["files"] == 2


def test_a_second_writer_of_the_same_arrays_fails_naming_the_first(tmp_path, s3_server):
    """Two runs of one dataset with other inputs: the one that publishes second fails naming
    the other's snapshot, publishes nothing, and removes nothing (the winner's repository,
    created by one of them, stays as the winner left it)."""
    s3 = s3_server.client()
    s3.create_bucket(Bucket="twice")
    files = [str(f) for f in clean(tmp_path / "archive", years=(2000, 2001, 2002))]

    def config(sources: list[str]) -> dict:
        return {
            "datasets": {"tas": {"sources": sources}},
            "store": {"repository": "s3://twice/tas.icechunk"},
            "s3": {"endpoint_url": s3_server.endpoint, "force_path_style": True},
        }

    marker, go = tmp_path / "written", tmp_path / "go"
    slow = {
        "NC2ICE_PAUSE_AT": "commit:written",
        "NC2ICE_PAUSE_MARKER": str(marker),
        "NC2ICE_PAUSE_UNTIL": str(go),
    }
    first = start_workflow(tmp_path / "run-1", config(files[:2]), {**s3_server.env, **slow})
    deadline = time.monotonic() + 120
    while not marker.exists():  # the first run has written its snapshot, not published it
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    run_workflow(tmp_path / "run-2", config(files), env=s3_server.env)  # commits, publishes
    go.touch()
    assert first.wait(300) != 0
    said = (tmp_path / "run-1" / "snakemake.out").read_text()
    winner = json.loads((tmp_path / "run-2" / "results" / "tas" / "commit.json").read_text())
    assert f"another run committed snapshot {winner['snapshot']}" in said
    assert "nothing of this run was published" in said
    access = Access.from_config(config(files))
    repo = open_repository("s3://twice/tas.icechunk", access)
    # main is the winner's snapshot, and after it the index's commit naming it
    assert [s.id for s in repo.ancestry(branch="main")][1] == winner["snapshot"]
    assert read_index(repo)["tas"]["snapshot"] == winner["snapshot"]
    assert open_store_dataset("s3://twice/tas.icechunk", access, "tas").sizes["time"] == 36
    loser = json.loads((tmp_path / "run-1" / "results" / "tas" / "commit.json").read_text())
    assert repo.lookup_branch(loser["branch"]) == loser["snapshot"]  # kept, named


def test_two_runs_commit_to_one_local_store_at_once(tmp_path):
    """Two runs of one local store commit at once (each to a branch of its own: only moving
    main takes turns): the second one publishes while the first is still inside its
    commit, and publishing the same inputs twice makes one snapshot."""
    files = [str(f) for f in clean(tmp_path / "archive", years=(2000, 2001))]
    config = {
        "datasets": {"tas": {"sources": files}},
        "store": {"repository": str(tmp_path / "one.icechunk")},
    }
    marker, go = tmp_path / "paused", tmp_path / "go"
    slow = {
        "NC2ICE_PAUSE_AT": "commit:written",
        "NC2ICE_PAUSE_MARKER": str(marker),
        "NC2ICE_PAUSE_UNTIL": str(go),
    }
    first = start_workflow(tmp_path / "run-1", config, slow)
    deadline = time.monotonic() + 120
    while not marker.exists():  # the first run is inside its commit now
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    run_workflow(tmp_path / "run-2", config)  # never waits for the first one's commit
    assert first.poll() is None
    go.touch()
    assert first.wait(300) == 0, (tmp_path / "run-1" / "snakemake.out").read_text()[-3000:]
    log = (tmp_path / "run-1" / "results" / "tas" / "logs" / "publish.log").read_text()
    assert "main holds these inputs already" in log
    store = normalize_url(str(tmp_path / "one.icechunk"))
    assert len(_dataset_commits(store)) == 1
    assert open_store_dataset(store, group="tas").sizes["time"] == 24
    assert open_repository(store, Access()).list_branches() == {"main"}


def test_a_failed_validation_leaves_main_where_it_was(tmp_path):
    """A source that changes after its scan fails the validation: main keeps the last
    validated snapshot (which still reads back as the old sources), the snapshot that failed
    stays on the branch the log names, and the next run starts from main again."""
    files = clean(tmp_path / "archive", years=(2000, 2001, 2002, 2003))
    newest = files[3].read_bytes()
    files[3].unlink()
    config = {
        "datasets": {"tas": {"sources": [str(tmp_path / "archive" / "*.nc")]}},
        "store": {"root": str(tmp_path / "stores")},
    }
    run_workflow(tmp_path / "run", config)
    store = normalize_url(str(tmp_path / "stores" / "tas.icechunk"))
    before = open_repository(store, Access()).lookup_branch("main")

    files[3].write_bytes(newest)  # a new year arrives, and changes again while validated
    marker = tmp_path / "paused"
    env = {
        "NC2ICE_PAUSE_AT": "validate:reading",
        "NC2ICE_PAUSE_MARKER": str(marker),
        "NC2ICE_PAUSE_SECONDS": "3",
    }
    run = start_workflow(tmp_path / "run", config, env)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.1)  # a new Last-Modified second
    write(monthly(2003, seed=7), files[3], tas={"zlib": True, "chunksizes": (6, 6, 8)})
    assert run.wait(300) != 0
    said = (tmp_path / "run" / "snakemake.out").read_text()
    record = commit_record(tmp_path / "run", "tas")
    assert record["action"] == "appended"
    repo = open_repository(store, Access())
    assert repo.lookup_branch("main") == before  # not moved
    assert f"kept on branch {record['branch']}" in said and "validation FAILED" in said
    assert repo.lookup_branch(record["branch"]) == record["snapshot"]
    failed = json.loads(
        (tmp_path / "run" / "results" / "tas" / "validation.failed.json").read_text()
    )
    assert "tas_2003" in failed["changed_sources"]
    summary = (tmp_path / "run" / "results" / "tas" / "report" / "summary.html").read_text()
    assert "FAILED" in summary and record["branch"] in summary
    read_back_in_new_process(store, files[:3], [f"file://{tmp_path / 'archive'}/"])

    run_workflow(tmp_path / "run", config)  # starts from main: rescans 2003, appends it
    again = commit_record(tmp_path / "run", "tas")
    assert again["base"] == before and again["action"] == "appended"
    assert open_repository(store, Access()).lookup_branch("main") == again["snapshot"]
    read_back_in_new_process(store, files, [f"file://{tmp_path / 'archive'}/"])
