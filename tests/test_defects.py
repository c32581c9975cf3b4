"""Defects of issue 6 that live below the workflow: each test failed before its fix."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import archives
import icechunk
import numpy as np
import pytest
from conftest import commit

from nc2ice.access import Access, normalize_url, prefix_of
from nc2ice.atomic import atomic_write_text
from nc2ice.combine.plan import combine
from nc2ice.errors import AccessError, CommitError, ScanError
from nc2ice.model.manifest import Manifest, Variable
from nc2ice.scan.scanner import scan_file
from nc2ice.store.open import open_store_dataset


def _manifest(i: int, url: str) -> tuple[str, Manifest]:
    time = Variable(
        "time",
        ("time",),
        (2,),
        (2,),
        "<f8",
        {"units": "days since 2000-01-01"},
        data=np.array([2.0 * i, 2.0 * i + 1]),
    )
    tas = Variable(
        "tas",
        ("time",),
        (2,),
        (1,),
        "<f4",
        {},
        virtual=True,
        refs={(0,): (url, 0, 4), (1,): (url, 4, 4)},
    )
    return f"f{i}", Manifest(url, {"time": time, "tas": tas}, {"": {}})


def test_a_refused_reference_stops_the_commit_and_leaves_nothing_behind(tmp_path):
    url = "http://127.0.0.1:8080/x.nc"  # Icechunk 1.x drops the port: no container matches
    plan = combine([_manifest(0, url)], concat_dim="time")
    store = normalize_url(str(tmp_path / "store.icechunk"))
    with pytest.raises(CommitError) as err:
        commit(plan, store, [prefix_of(url)])
    assert "'tas'" in str(err.value) and "(0,)" in str(err.value) and url in str(err.value)
    # The repository it created stays, empty: main at Icechunk's first snapshot, and the
    # failed commit's own branch is gone (a repository is never deleted: another run may
    # have opened it meanwhile).
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(store[7:]))
    assert [s.message for s in repo.ancestry(branch="main")] == ["Repository initialized"]
    assert repo.list_branches() == {"main"}


def _batch(tmp_path, files, on_error):
    from nc2ice.sources.files import Source

    config = {"datasets": {"d": {"on_error": on_error, "inline_threshold": 0}}}
    sources = [Source(f.stem, normalize_url(str(f))) for f in files]
    return lambda: steps_scan(sources, tmp_path / "m", config["datasets"]["d"])


def steps_scan(sources, folder, ds):
    from nc2ice.scan.scanner import scan_batch

    return scan_batch(
        sources,
        folder,
        Access(),
        inline_limit=0,
        connections=2,
        head_bytes=1024,
        on_error=ds["on_error"],
    )


def test_on_error_skip_skips_bad_files_but_not_bugs(tmp_path, monkeypatch):
    files = archives.clean(tmp_path / "src", years=(2000,))
    scan = _batch(tmp_path, files, "skip")

    def bug(*args, **kwargs):
        raise TypeError("a bug in the scanner")

    with monkeypatch.context() as patched:
        patched.setattr("nc2ice.scan.scanner.hdf5_steps", bug)
        with pytest.raises(TypeError, match="a bug in the scanner"):
            scan()
    assert not list((tmp_path / "m").glob("*.json"))

    files[0].write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # a bad file is skipped
    (row,) = scan()
    assert "truncated or corrupt" in row.skipped and not row.manifest


def test_unreadable_files_say_so_and_point_at_on_error_skip(tmp_path):
    missing = normalize_url(str(tmp_path / "gone.nc"))
    with pytest.raises(AccessError, match="gone.nc: cannot read \\(no such file\\)"):
        Access().head(missing)
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"not a netCDF file at all")
    with pytest.raises(ScanError, match="not a netCDF or HDF5 file.*on_error: skip"):
        _batch(tmp_path, [bad], "fail")()


def test_outputs_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "x.json", "{}")
    finally:
        os.umask(old)
    assert oct((tmp_path / "x.json").stat().st_mode & 0o777) == "0o644"


def test_reading_helpers_take_a_plain_path_and_print_no_library_warnings(tmp_path, monkeypatch):
    files = archives.clean(tmp_path / "src", years=(2000, 2001))
    urls = [normalize_url(str(f)) for f in files]
    manifests = [(f.stem, scan_file(u, Access(), inline_limit=0)) for f, u in zip(files, urls)]
    store = normalize_url(str(tmp_path / "s.icechunk"))
    commit(combine(manifests, concat_dim="time"), store, [prefix_of(urls[0])])
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = open_store_dataset("s.icechunk")
        assert float(ds.tas.mean()) > 200
    assert not caught, [str(w.message) for w in caught]


def test_error_types_live_where_every_module_can_import_them():
    code = "import sys, nc2ice.combine.encodings; print('nc2ice.combine.plan' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_help_is_plain_text():
    out = subprocess.run(
        [sys.executable, "-c", "from nc2ice.cli import main; main(['--help'])"],
        capture_output=True,
        text=True,
    ).stdout
    assert "nc2ice show" in out and "``" not in out


def test_a_server_that_refuses_head_is_asked_with_a_ranged_get(http_server, http_root):
    """Some servers answer HEAD with 405; obstore calls that "not found". The listing asks
    such a server with a one-byte ranged GET instead, and a real 404 still says so."""
    (http_root / "nohead").mkdir(exist_ok=True)
    (http_root / "nohead" / "x.nc").write_bytes(b"CDF\x01" + bytes(96))
    got = Access().head(f"{http_server.url}/fault/nohead/nohead/x.nc")
    assert got["size"] == 100 and got["last_modified"]
    with pytest.raises(AccessError, match=r"nohead/gone.nc: cannot read \(not found \(404\)\)"):
        Access().head(f"{http_server.url}/fault/nohead/nohead/gone.nc")
