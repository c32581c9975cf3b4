"""The workflow end to end, run as `snakemake` subprocesses, against local files and servers."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from archives import cdf5, clean, netcdf3
from conftest import commit_record, read_back_in_new_process, run_workflow, validation

from nc2ice.access import Access
from nc2ice.store.contents import read_index
from nc2ice.store.repository import open_repository

pytestmark = pytest.mark.e2e


def test_local_files(tmp_path):
    files = clean(tmp_path / "archive")
    config = {
        "datasets": {"tas": {"sources": [str(tmp_path / "archive" / "*.nc")]}},
        "store": {"root": str(tmp_path / "stores")},
    }
    first = run_workflow(tmp_path / "run", config)
    report = validation(tmp_path / "run", "tas")
    assert report["passed"] is True
    assert set(report["variables_checked"]) == {"tas", "time", "time_bnds", "lat", "lon"}
    assert "Warning" not in first.stderr and "Shell command" not in first.stderr
    results = tmp_path / "run" / "results" / "tas"
    outputs = ["sources.tsv", "commit.json", "validation.json", "skipped.tsv"]
    outputs += [str(p.relative_to(results)) for p in results.glob("manifests/**/*.*")]
    assert {oct((results / o).stat().st_mode & 0o777) for o in outputs} == {"0o644"}
    record = commit_record(tmp_path / "run", "tas")
    assert record["report"]["copied_bytes"] == 0
    assert len(record["report"]["files_as_is"]) == 3
    out = read_back_in_new_process(record["store"], files, [f"file://{tmp_path / 'archive'}/"])
    assert "READ BACK OK" in out

    # A rerun asks the sources, finds nothing changed, and does nothing else; a forced
    # commit of the same inputs makes no new snapshot.
    again = run_workflow(tmp_path / "run", config)
    assert "tas: nothing changed" in again.stderr
    assert "rule scan" not in again.stderr and "rule commit" not in again.stderr
    run_workflow(tmp_path / "run", config, "--forcerun", "commit")
    assert commit_record(tmp_path / "run", "tas")["snapshot"] == record["snapshot"]
    assert commit_record(tmp_path / "run", "tas")["new_commit"] is False
    # Checking more chunks reruns the validation, and only that.
    config["datasets"]["tas"]["sample_chunks"] = 9
    ran = run_workflow(tmp_path / "run", config).stderr
    assert "rule validate" in ran and "rule commit" not in ran and "rule scan" not in ran
    # Settings of the listing, the scan or the checks never rewrite the store.
    options = {"on_error": "skip", "on_vanished": "drop", "head_bytes": 4096, "batch_size": 1}
    config["datasets"]["tas"].update(options, max_materialized_fraction=0.5)
    run_workflow(tmp_path / "run", config)
    assert commit_record(tmp_path / "run", "tas")["snapshot"] == record["snapshot"]
    commits = open_repository(record["store"], Access()).ancestry(branch="main")
    assert sum(bool((s.metadata or {}).get("dataset")) for s in commits) == 1


def test_when_every_file_is_skipped_the_run_says_so(tmp_path):
    for name in ("a.nc", "b.nc"):
        (tmp_path / name).write_text("<html>not netCDF</html>")
    config = {
        "datasets": {"junk": {"sources": [str(tmp_path / "*.nc")], "on_error": "skip"}},
        "store": {"root": str(tmp_path / "stores")},
    }
    proc = run_workflow(tmp_path / "run", config, check=False)
    assert proc.returncode != 0
    assert "all 2 files were skipped" in proc.stderr and "skipped.tsv" in proc.stderr
    assert (tmp_path / "run" / "results" / "junk" / "skipped.tsv").exists() is False


def test_netcdf3_local(tmp_path):
    files = netcdf3(tmp_path / "archive")
    config = {
        "datasets": {"nc3": {"sources": [str(f) for f in files]}},
        "store": {"root": str(tmp_path / "stores")},
    }
    run_workflow(tmp_path / "run", config)
    assert validation(tmp_path / "run", "nc3")["passed"] is True
    record = commit_record(tmp_path / "run", "nc3")
    read_back_in_new_process(record["store"], files, [f"file://{tmp_path / 'archive'}/"])


def test_http_sources_are_throttled(tmp_path, http_server, http_root):
    files = clean(http_root / "e2e-http", years=(2000, 2001, 2002, 2003, 2004, 2005))
    urls = [f"{http_server.url}/e2e-http/{f.name}" for f in files]
    config = {
        "datasets": {"web": {"sources": urls}},
        "store": {"root": str(tmp_path / "stores")},
        "http": {"max_connections": 1},
    }
    http_server.reset_counts()
    http_server.delay_s = 0.02
    try:
        run_workflow(tmp_path / "run", config, "--cores", "4")
    finally:
        http_server.delay_s = 0.0
    assert validation(tmp_path / "run", "web")["passed"] is True
    assert http_server.max_active == 1, f"{http_server.max_active} connections at once"
    record = commit_record(tmp_path / "run", "web")
    read_back_in_new_process(record["store"], files, [f"{http_server.url}/"])


def test_s3_sources_and_store(tmp_path, s3_server):
    files = clean(tmp_path / "archive")
    nc3 = cdf5(tmp_path / "cdf5")
    s3 = s3_server.client()
    for bucket in ("archive", "stores"):
        s3.create_bucket(Bucket=bucket)
    for f in files:
        s3.upload_file(str(f), "archive", f"cmip/tas/{f.name}")
    s3.upload_file(str(files[0]), "archive", "cmip/tas/older/tas_1999.nc")  # `*` stops at `/`
    for f in nc3:
        s3.upload_file(str(f), "archive", f"cdf5/{f.name}")
    config = {
        "datasets": {
            "bucket": {"sources": ["s3://archive/cmip/tas/*.nc"]},
            "nc3": {"sources": ["s3://archive/cdf5/*.nc"]},
        },
        "store": {"root": "s3://stores/virtual"},
        "s3": {"endpoint_url": s3_server.endpoint, "force_path_style": True, "region": "us-east-1"},
    }
    run_workflow(tmp_path / "run", config, env=s3_server.env)
    assert validation(tmp_path / "run", "bucket")["passed"] is True
    assert validation(tmp_path / "run", "nc3")["passed"] is True  # CDF-5, validated by netCDF-C
    record = commit_record(tmp_path / "run", "bucket")
    assert record["store"] == "s3://stores/virtual/bucket.icechunk"
    assert [f["file_id"] for f in record["files"]] == ["tas_2000", "tas_2001", "tas_2002"]
    read_back_in_new_process(record["store"], files, ["s3://archive/"], s3_server.endpoint)

    # Published for anonymous readers (issue 17): buckets readable by anyone, a reader with
    # no AWS_* in its environment opens the store with nc2ice.open, and with the plain code
    # commit.json, published.json and the report show.
    out = read_anonymously(record, files, s3_server.endpoint, public=())
    assert "A PRIVATE STORE IS REFUSED IN ONE LINE" in out
    s3.put_bucket_policy(Bucket="stores", Policy=json.dumps(public_read("stores")))
    out = read_anonymously(record, files, s3_server.endpoint, public=("stores",))
    assert "THE STORE OPENS, ITS SOURCES DO NOT" in out  # private sources: values refused
    s3.put_bucket_policy(Bucket="archive", Policy=json.dumps(public_read("archive")))
    published = json.loads((tmp_path / "run/results/bucket/published.json").read_text())
    assert published["read_with"] == record["read_with"]
    assert "anonymous=True" in record["read_with"] and "nc2ice" not in record["read_with"]
    summary = (tmp_path / "run/results/bucket/report/summary.html").read_text()
    assert html.escape(record["read_with"]) in summary
    out = read_anonymously(record, files, s3_server.endpoint)
    assert "OPENED ANONYMOUSLY WITH nc2ice.open" in out and "AND WITH THE PLAIN CODE" in out


def public_read(bucket: str) -> dict:
    """The bucket policy that lets anyone read (as for a public bucket on Acacia); moto
    enforces it: without it, an unsigned GET is answered 403."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PublicRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }


READ_ANONYMOUSLY = r"""
import json, os, sys
import xarray as xr
record, sources, endpoint, public = json.loads(sys.argv[1])
import nc2ice
from nc2ice.errors import AccessError
if not public:
    try:
        nc2ice.open(record["store"], endpoint_url=endpoint)
    except AccessError as exc:
        assert "cannot open the repository" in str(exc) and "anonymously at" in str(exc), exc
        assert "\n" not in str(exc), exc
        print("A PRIVATE STORE IS REFUSED IN ONE LINE")
        sys.exit(0)
    raise AssertionError("a private store was opened anonymously")
assert not any(k.startswith("AWS_") for k in os.environ), "credentials in the environment"
want = xr.concat([xr.open_dataset(s).load() for s in sources], dim="time", data_vars="minimal",
                 coords="minimal", compat="override", join="override").drop_attrs()
ds = nc2ice.open(record["store"], record["group"] or None, endpoint_url=endpoint)
if "archive" not in public:  # what the store holds as values reads; referenced chunks are refused
    xr.testing.assert_equal(ds.time_bnds.load(), want.time_bnds)
    try:
        ds.tas.load()
    except Exception as exc:
        assert "error fetching virtual reference" in str(exc), str(exc)[:2000]
        print("THE STORE OPENS, ITS SOURCES DO NOT")
    else:
        raise AssertionError("a private source was read anonymously")
    sys.stdout.flush()
    os._exit(0)  # Icechunk 1.1's runtime may crash the interpreter's exit after a refused read
xr.testing.assert_equal(ds.load().drop_attrs(), want)
assert ds.tas.attrs["units"] == "K"
print("OPENED ANONYMOUSLY WITH nc2ice.open", dict(ds.sizes))
sys.modules["nc2ice"] = None  # the plain code needs no nc2ice
scope = {}
exec(record["read_with"], scope)
xr.testing.assert_equal(scope["ds"].load().drop_attrs(), want)
print("AND WITH THE PLAIN CODE")
"""


def read_anonymously(
    record: dict, sources: list, endpoint: str, public=("stores", "archive")
) -> str:
    """Open a published store in a process with no AWS credentials in its environment,
    with the ``public`` buckets readable by anyone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    arg = json.dumps([record, [str(s) for s in sources], endpoint, list(public)])
    proc = subprocess.run(
        [sys.executable, "-c", READ_ANONYMOUSLY, arg],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def test_s3_errors_are_one_line_naming_bucket_endpoint_and_cause(tmp_path, s3_server):
    config = {
        "datasets": {"nokeys": {"sources": ["s3://archive/cmip/tas/*.nc"]}},
        "store": {"root": str(tmp_path / "s")},
        "s3": {"endpoint_url": s3_server.endpoint, "force_path_style": True},
        "http": {"retries": 0},
    }
    env = {k: None for k in s3_server.env if k.startswith("AWS_")}
    proc = run_workflow(tmp_path / "run", config, check=False, env=env)
    assert proc.returncode != 0
    line = next(x for x in proc.stderr.splitlines() if "s3://archive/cmip/tas/*.nc:" in x)
    assert "no S3 credentials" in line and "AWS_ACCESS_KEY_ID" in line
    assert "bucket 'archive'" in line and s3_server.endpoint in line
    assert "169.254" not in proc.stderr and "Debug source" not in proc.stderr


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("fault/404/tas_2000.nc", "not found (404)"),
        ("fault/403/tas_2000.nc", "403"),
        ("fault/html/tas_2000.nc", "HTML/XML page, not netCDF"),
    ],
)
def test_bad_http_sources_fail_naming_the_url(tmp_path, http_server, http_root, path, expected):
    clean(http_root / "bad", years=(2000,))
    url = f"{http_server.url}/{path.replace('tas_2000', 'bad/tas_2000')}"
    config = {"datasets": {"bad": {"sources": [url]}}, "store": {"root": str(tmp_path / "s")}}
    proc = run_workflow(tmp_path / "run", config, check=False)
    assert proc.returncode != 0
    assert url in proc.stderr and expected in proc.stderr, proc.stderr[-3000:]
    assert not list((tmp_path / "run" / "results" / "bad" / "manifests").glob("**/*.json"))
    assert not (tmp_path / "s").exists()


def test_flaky_server_is_retried(tmp_path, http_server, http_root):
    clean(http_root / "flaky", years=(2000, 2001))
    urls = [f"{http_server.url}/fault/flaky/flaky/tas_{y}.nc" for y in (2000, 2001)]
    config = {"datasets": {"flaky": {"sources": urls}}, "store": {"root": str(tmp_path / "s")}}
    run_workflow(tmp_path / "run", config)
    assert validation(tmp_path / "run", "flaky")["passed"] is True


def test_unreachable_host(tmp_path):
    url = "http://127.0.0.2/nothing-listens-here.nc"
    config = {
        "datasets": {"gone": {"sources": [url]}},
        "store": {"root": str(tmp_path / "s")},
        "http": {"retries": 0, "timeout_s": 5},
    }
    proc = run_workflow(tmp_path / "run", config, check=False)
    assert proc.returncode != 0 and url in proc.stderr


def test_misspelt_config_key(tmp_path):
    config = {"datasets": {"x": {"sourcse": ["a.nc"]}}}
    proc = run_workflow(tmp_path / "run", config, check=False)
    assert proc.returncode != 0
    assert "datasets.x" in proc.stderr and "sourcse" in proc.stderr, proc.stderr[-2000:]


def test_user_config_replaces_the_demo(tmp_path):
    clean(tmp_path / "archive", years=(2000,))
    config = {
        "datasets": {"mine": {"sources": [str(tmp_path / "archive" / "tas_2000.nc")]}},
        "store": {"root": str(tmp_path / "stores")},
    }
    proc = run_workflow(tmp_path / "run", config, "--dry-run")
    assert "demo" not in proc.stdout
    assert not (tmp_path / "run" / "resources").exists()


def test_a_changed_source_is_refused_not_misread(tmp_path):
    files = clean(tmp_path / "archive", years=(2000, 2001))
    config = {
        "datasets": {"tas": {"sources": [str(f) for f in files], "inline_threshold": 0}},
        "store": {"root": str(tmp_path / "stores")},
    }
    run_workflow(tmp_path / "run", config)
    import time

    import xarray as xr

    from nc2ice.access import Access
    from nc2ice.store.open import open_store_dataset

    store = commit_record(tmp_path / "run", "tas")["store"]
    assert float(open_store_dataset(store, Access()).tas[0, 0, 0]) > 0
    time.sleep(2)
    files[0].write_bytes(files[0].read_bytes())  # same bytes, but modified after the commit
    with pytest.raises(Exception, match="checksum of the object owning the virtual chunk"):
        _ = open_store_dataset(store, Access()).tas[0, 0, 0].values
    assert xr.open_dataset(files[0]).tas.size


def test_sources_and_store_in_folders_with_odd_names(tmp_path):
    """Issue 14, item 9: '#', '%', '?' and spaces in folder names, for sources (a glob, a
    path, a file:// URL typed unencoded) and for the store; a rerun sees the same files."""
    from nc2ice.access import local_path, normalize_url, prefix_of

    files = [
        *clean(tmp_path / "run #2" / "a b", years=(2000, 2001)),
        *clean(tmp_path / "50%", years=(2002,)),
        *clean(tmp_path / "q?x", years=(2003,)),
    ]
    sources = [str(tmp_path / "run #2" / "a b" / "*.nc"), str(files[2]), f"file://{files[3]}"]
    config = {
        "datasets": {"odd": {"sources": sources}},
        "store": {"root": str(tmp_path / "stores #1" / "50% a?b")},
    }
    run_workflow(tmp_path / "run", config)
    assert validation(tmp_path / "run", "odd")["passed"] is True
    record = commit_record(tmp_path / "run", "odd")
    assert [f["file_id"] for f in record["files"]] == [f.stem for f in files]
    assert [f["url"] for f in record["files"]] == [normalize_url(str(f)) for f in files]
    store = local_path(record["store"])
    assert store == tmp_path / "stores #1" / "50% a?b" / "odd.icechunk" and store.is_dir()
    prefixes = sorted({prefix_of(f["url"]) for f in record["files"]})
    assert prefixes == [f"file://{tmp_path}/"]
    read_back_in_new_process(str(store), files, prefixes)
    again = run_workflow(tmp_path / "run", config)
    assert "odd: nothing changed" in again.stderr


def test_two_datasets_share_one_local_repository_in_one_run(tmp_path):
    """Each dataset a group of one local repository: their commits and publishes take turns
    (Icechunk's local storage takes one writer at a time) and both reach main."""
    first = clean(tmp_path / "a", years=(2000, 2001))
    second = clean(tmp_path / "b", years=(2002,))
    config = {
        "datasets": {
            "first": {"sources": [str(f) for f in first]},
            "second": {"sources": [str(f) for f in second]},
        },
        "store": {"repository": str(tmp_path / "all.icechunk")},
    }
    run_workflow(tmp_path / "run", config, "--cores", "4")
    store = str(tmp_path / "all.icechunk")
    for name, files in (("first", first), ("second", second)):
        assert validation(tmp_path / "run", name)["passed"] is True
        from nc2ice.store.open import open_store_dataset

        assert open_store_dataset(store, group=name).sizes["time"] == 12 * len(files)
    repo = open_repository(f"file://{store}", Access())
    history = [dict(s.metadata or {}) for s in repo.ancestry(branch="main")]
    assert sorted(m["dataset"] for m in history if "dataset" in m) == ["first", "second"]
    assert sorted(m["nc2ice_index"] for m in history if "nc2ice_index" in m) == ["first", "second"]
    assert sorted(read_index(repo)) == ["first", "second"]
