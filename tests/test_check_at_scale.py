"""Validation at archive scale (issue 15): what changed first, in several jobs, and a wrong
value planted anywhere caught."""

from __future__ import annotations

import json
import shutil

import pytest
import zarr
from archives import clean
from conftest import commit_record, run_workflow, validation

from nc2ice.access import Access
from nc2ice.store.repository import open_repository

pytestmark = pytest.mark.e2e


def _arrive(staging, archive, years) -> None:
    for year in years:
        shutil.move(staging / f"tas_{year}.nc", archive / f"tas_{year}.nc")


def test_an_append_validates_what_changed_in_parts_and_catches_planted_values(tmp_path):
    staging, archive = tmp_path / "staging", tmp_path / "archive"
    clean(staging, years=range(1900, 2044))
    archive.mkdir()
    _arrive(staging, archive, range(1900, 2020))  # 120 files
    config = {
        "datasets": {"tas": {"sources": [str(archive / "*.nc")], "batch_size": 30}},
        "store": {"root": str(tmp_path / "stores")},
    }
    run = tmp_path / "run"
    run_workflow(run, config)
    first = validation(run, "tas")
    # 4 batches of files: 2 validation jobs, whose verdicts the verdict joins
    assert first["passed"] and first["parts"] == 2
    assert len(first["files_compared"]) == 120 and first["trusted"]["files"] == 0
    assert sorted((run / "results/tas/validation").glob("part*.json")) == [
        run / "results/tas/validation/part0.json",
        run / "results/tas/validation/part1.json",
    ]

    _arrive(staging, archive, range(2020, 2032))  # 12 new files: an append
    run_workflow(run, config)
    record, checked = commit_record(run, "tas"), validation(run, "tas")
    assert record["action"] == "appended"
    new = [f"tas_{y}" for y in range(2020, 2032)]
    assert sorted(checked["files_compared"]) == new  # every new file
    assert len(checked["files_rechecked"]) == 10  # and a sample of the others
    assert checked["trusted"] == {"snapshot": first["snapshot"], "files": 110}
    assert checked["passed"]

    # A store whose old part broke, behind a snapshot that looks like the dataset's own, and a
    # scan that referenced the wrong bytes of a new file: both caught, main left as it was.
    store = record["store"]
    repo = open_repository(store, Access())
    before = repo.lookup_branch("main")
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="tas", mode="r+")[0:12] = 999.0
    metadata = dict(next(iter(repo.ancestry(branch="main"))).metadata)
    broken = session.commit("not a validated change", metadata=metadata)
    _arrive(staging, archive, range(2032, 2044))
    run_workflow(run, config, "--omit-from", "commit")  # listed and scanned, not committed
    path = run / "results/tas/manifests/b00004/tas_2040.json"
    manifest = json.loads(path.read_text())
    refs = manifest["refs"]
    refs["tas/0.0.0"], refs["tas/1.0.0"] = refs["tas/1.0.0"], refs["tas/0.0.0"]
    path.write_text(json.dumps(manifest))
    config["datasets"]["tas"]["recheck_files"] = 1000  # every old file, so 1900 is in it
    failed = run_workflow(run, config, check=False)
    assert failed.returncode != 0 and "validation FAILED" in failed.stderr
    checked = validation(run, "tas")
    wrong = {(m["file"], m["variable"]) for m in checked["mismatches"]}
    assert {("tas_1900", "tas"), ("tas_2040", "tas")} <= wrong, checked["mismatches"]
    assert open_repository(store, Access()).lookup_branch("main") == broken != before
