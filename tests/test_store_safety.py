"""Nothing lost (issue 14): a run removes only what it created.  A store location that holds
anything but an Icechunk repository is refused before any write, naming what is there, and
every object is still there afterwards, source files included."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest
from archives import clean
from conftest import run_workflow, validation

pytestmark = pytest.mark.e2e


def _one_line_error(stderr: str, store: str) -> str:
    lines = [line for line in stderr.splitlines() if "not an Icechunk repository" in line]
    assert lines, stderr[-3000:]
    assert store in lines[0] and "never removes what it did not write" in lines[0]
    assert "Traceback" not in stderr
    return lines[0]


def test_a_folder_holding_other_files_is_refused_and_kept(tmp_path):
    clean(tmp_path / "archive", years=(2000, 2001))
    theirs = tmp_path / "shared"
    (theirs / "notes").mkdir(parents=True)
    (theirs / "notes" / "todo.txt").write_text("keep me")
    (theirs / "results.csv").write_text("a,b\n1,2\n")
    before = sorted(p.relative_to(theirs) for p in theirs.rglob("*"))
    config = {
        "datasets": {"tas": {"sources": [str(tmp_path / "archive" / "*.nc")]}},
        "store": {"repository": str(theirs)},
    }
    proc = run_workflow(tmp_path / "run", config, check=False)
    assert proc.returncode != 0
    line = _one_line_error(proc.stderr, str(theirs))
    assert "results.csv" in line
    assert sorted(p.relative_to(theirs) for p in theirs.rglob("*")) == before
    assert (theirs / "notes" / "todo.txt").read_text() == "keep me"


def test_an_s3_prefix_holding_the_sources_is_refused_and_kept(tmp_path, s3_server):
    files = clean(tmp_path / "archive", years=(2000, 2001))
    s3 = s3_server.client()
    s3.create_bucket(Bucket="data")
    for f in files:
        s3.upload_file(str(f), "data", f"arch/{f.name}")
    config = {
        "datasets": {"tas": {"sources": ["s3://data/arch/*.nc"]}},
        "store": {"repository": "s3://data/arch"},
        "s3": {"endpoint_url": s3_server.endpoint, "force_path_style": True},
    }
    proc = run_workflow(tmp_path / "run", config, check=False, env=s3_server.env)
    assert proc.returncode != 0
    _one_line_error(proc.stderr, "s3://data/arch")
    kept = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="data")["Contents"])
    assert kept == ["arch/tas_2000.nc", "arch/tas_2001.nc"]


@contextlib.contextmanager
def _small_disk(path: Path, size_kb: int):
    """A real filesystem of ``size_kb`` (tmpfs; mounting needs root, which CI has)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(folder: Path) -> Path:
    """Take every free byte of the filesystem holding ``folder``."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    return filler


@pytest.mark.parametrize("full", ["store", "results"])
def test_a_full_disk_is_one_line_and_a_rerun_after_freeing_space_completes(tmp_path, full):
    clean(tmp_path / "archive", years=(2000, 2001))
    with _small_disk(tmp_path / "scratch", 1024) as scratch:
        workdir = tmp_path / "run"
        workdir.mkdir()
        if full == "results":  # the results folder on the full disk, the store elsewhere
            (scratch / "results").mkdir()
            (workdir / "results").symlink_to(scratch / "results")
            stores = tmp_path / "stores"
        else:
            stores = scratch / "stores"
        config = {
            "datasets": {"tas": {"sources": [str(tmp_path / "archive" / "*.nc")]}},
            "store": {"root": str(stores)},
        }
        if full == "results":  # room for the listing, not for the manifests
            run_workflow(workdir, config, "--until", "list_sources")
        filler = _fill(scratch)
        proc = run_workflow(workdir, config, check=False)
        assert proc.returncode != 0
        said = [line for line in proc.stderr.splitlines() if "no space left on the device" in line]
        assert said and "the rerun continues where this one stopped" in said[0], proc.stderr[-3000:]
        assert "failed unexpectedly" not in proc.stderr and "Traceback" not in proc.stderr
        filler.unlink()
        run_workflow(workdir, config)
        assert validation(workdir, "tas")["passed"] is True
