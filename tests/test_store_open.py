"""Opening a store as a reader (issue 17, item 4): ``nc2ice.open`` gives a Dataset for a
group or a store holding one dataset at its root, a DataTree for a repository of several
groups; a failed snapshot is refused and an empty ``main`` said so; and the plain Icechunk +
xarray code ``read_with`` writes opens the same values without nc2ice."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from archives import clean

import nc2ice
from nc2ice.access import Access, S3Options, normalize_url, prefix_of
from nc2ice.combine.plan import combine
from nc2ice.errors import AccessError, PublishError
from nc2ice.model.chunks import read_region
from nc2ice.scan.scanner import scan_file
from nc2ice.store.open import read_with, reader_access
from nc2ice.store.publish import mark_failed, publish
from nc2ice.store.repository import ensure_repository, open_repository
from nc2ice.store.snapshot import commit_plan


def _plan(files):
    urls = [normalize_url(str(f)) for f in files]
    manifests = [(f.stem, scan_file(u, Access(), inline_limit=0)) for f, u in zip(files, urls)]
    return combine(
        manifests,
        concat_dim="time",
        reader=lambda var: read_region(var, tuple(slice(0, n) for n in var.shape), Access()),
    )


def _commit(plan, store: str, files, *, dataset: str, group: str, published=True, access=None):
    access = access or Access()
    prefixes = sorted({prefix_of(normalize_url(str(f))) for f in files})
    metadata = {
        "dataset": dataset,
        "group": group,
        "input_digest": dataset,
        "order": plan.files,
        "sources": {f: {"url": "", "manifest_sha256": f} for f in plan.files},
        "config": {},
    }
    outcome = commit_plan(
        plan,
        dataset=dataset,
        store_url=store,
        group=group,
        access=access,
        prefixes=prefixes,
        metadata=metadata,
        checksums={},
    )
    if published:
        repo = open_repository(store, access)
        publish(repo, dataset, group, outcome, rewrite=lambda tip: outcome)
    return outcome.snapshot, prefixes


def _sources(files) -> xr.Dataset:
    return xr.concat(
        [xr.open_dataset(f).load() for f in files],
        dim="time",
        data_vars="minimal",
        coords="minimal",
        compat="override",
        join="override",
    )


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One local repository holding two datasets, in groups ``tas`` and ``more/tas``."""
    root = tmp_path_factory.mktemp("open")
    first = clean(root / "a", years=(2000, 2001))
    second = clean(root / "b", years=(2010,))
    store = normalize_url(str(root / "all.icechunk"))
    _, prefixes = _commit(_plan(first), store, first, dataset="tas", group="tas")
    _, more = _commit(_plan(second), store, second, dataset="more", group="more/tas")
    return store, first, second, prefixes + more


def test_a_group_opens_as_a_dataset_equal_to_its_sources(shared):
    store, first, second, _ = shared
    ds = nc2ice.open(store, "tas")
    assert isinstance(ds, xr.Dataset)
    xr.testing.assert_equal(ds.load().drop_attrs(), _sources(first).drop_attrs())
    assert ds.tas.attrs["units"] == "K" and ds.attrs["title"] == "test archive"
    deeper = nc2ice.open(store, "/more/tas/")
    xr.testing.assert_equal(deeper.load().drop_attrs(), _sources(second).drop_attrs())


def test_a_repository_of_several_groups_opens_as_a_tree(shared):
    store, first, second, _ = shared
    tree = nc2ice.open(store)
    assert isinstance(tree, xr.DataTree)
    assert set(tree.children) == {"tas", "more"}
    got = tree["tas"].to_dataset().load().drop_attrs()
    xr.testing.assert_equal(got, _sources(first).drop_attrs())
    got = tree["more/tas"].to_dataset().load().drop_attrs()
    xr.testing.assert_equal(got, _sources(second).drop_attrs())
    assert tree["tas"].attrs["title"] == "test archive"


def test_a_group_that_is_not_there_is_named_with_those_that_are(shared):
    with pytest.raises(AccessError, match=r"no group 'nope' \(its groups: more, more/tas, tas\)"):
        nc2ice.open(shared[0], "nope")
    with pytest.raises(AccessError, match="no snapshot or tag 'no-such-tag'"):
        nc2ice.open(shared[0], "tas", snapshot="no-such-tag")
    with pytest.raises(AccessError, match="no Icechunk repository here"):
        nc2ice.open(shared[0] + "-not-there")


def test_a_dataset_at_the_root_opens_as_a_dataset(tmp_path):
    files = clean(tmp_path / "a", years=(2000,))
    store = normalize_url(str(tmp_path / "one.icechunk"))
    snapshot, _ = _commit(_plan(files), store, files, dataset="tas", group="")
    ds = nc2ice.open(str(tmp_path / "one.icechunk"))
    assert isinstance(ds, xr.Dataset)
    xr.testing.assert_equal(ds.load().drop_attrs(), _sources(files).drop_attrs())
    # the same snapshot by id, and by its tag
    tag = next(t for t in open_repository(store, Access()).list_tags())
    assert nc2ice.open(store, snapshot=snapshot).sizes == ds.sizes
    assert nc2ice.open(store, snapshot=tag).sizes == ds.sizes


def test_an_empty_main_and_a_failed_snapshot_are_refused(tmp_path):
    files = clean(tmp_path / "a", years=(2000,))
    store = normalize_url(str(tmp_path / "s.icechunk"))
    ensure_repository(store, Access(), [prefix_of(normalize_url(str(files[0])))])
    with pytest.raises(AccessError, match="branch 'main'.* holds nothing yet"):
        nc2ice.open(store)
    snapshot, _ = _commit(_plan(files), store, files, dataset="tas", group="", published=False)
    with pytest.raises(AccessError, match="holds nothing yet"):
        nc2ice.open(store)  # the snapshot waits on its branch: main has nothing
    assert nc2ice.open(store, snapshot=snapshot).sizes["time"] == 12  # not failed (yet)
    mark_failed(open_repository(store, Access()), snapshot)
    with pytest.raises(PublishError, match=f"snapshot {snapshot} failed validation"):
        nc2ice.open(store, snapshot=snapshot)


def test_readers_are_anonymous_unless_credentials_are_in_the_environment(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://projects.pawsey.org.au")
    access = reader_access("s3://bucket/x.icechunk")
    assert access.s3.anonymous and access.store_s3.anonymous
    assert access.store_s3.endpoint_url == "https://projects.pawsey.org.au"
    assert access.store_s3.force_path_style and not access.store_s3.allow_http
    assert reader_access("s3://b/x", "http://127.0.0.1:9000").store_s3.allow_http
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    assert not reader_access("s3://bucket/x.icechunk").s3.anonymous
    assert reader_access("s3://bucket/x.icechunk", anonymous=True).s3.anonymous


def test_the_plain_code_opens_the_same_values_without_nc2ice(shared, tmp_path):
    store, first, second, prefixes = shared
    code = read_with(store, "tas", prefixes)
    assert "nc2ice" not in code.replace("all.icechunk", "")
    tree_code = read_with(store, "", prefixes, tree=True)
    check = (
        "import sys, json\n"
        + "sys.modules['nc2ice'] = None  # an import of nc2ice would fail\n"
        + "exec(sys.argv[1])\n"
        + "print('RESULT', json.dumps(float(ds.tas.sum())))\n"
        + "exec(sys.argv[2])\n"
        + "print('RESULT', json.dumps(sorted(tree.children)))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-I", "-c", check, code, tree_code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    total, children = (json.loads(line.removeprefix("RESULT ")) for line in lines)
    assert np.isclose(total, float(_sources(first).tas.sum()))
    assert children == ["more", "tas"]


def test_the_plain_code_for_s3_names_endpoint_style_and_credentials():
    s3 = S3Options("https://projects.pawsey.org.au", "us-east-1", True, True)
    code = read_with("s3://pub/stores/x.icechunk", "x", ["s3://src/", "https://h/"], s3=s3)
    assert 'bucket="pub"' in code and 'prefix="stores/x.icechunk"' in code
    assert 'endpoint_url="https://projects.pawsey.org.au"' in code
    assert "force_path_style=True" in code and "anonymous=True" in code
    assert '"s3://src/": icechunk.s3_anonymous_credentials()' in code
    assert '"https://h/": None' in code and 'group="x"' in code
    compile(code, "read_with", "exec")
    keyed = read_with("s3://pub/x.icechunk", "", ["s3://src/"], s3=S3Options(anonymous=False))
    assert "from_env=True" in keyed and "icechunk.s3_from_env_credentials()" in keyed
    assert "endpoint_url" not in keyed and "group=" not in keyed


def test_a_store_on_s3_opens_with_the_keys_in_the_environment(tmp_path, s3_server):
    """Keys in AWS_* (the s3_server fixture puts them there) sign the reader's requests."""
    s3_server.client().create_bucket(Bucket="keyed")
    files = clean(tmp_path / "a", years=(2000,))
    store_s3 = S3Options(s3_server.endpoint, "us-east-1", force_path_style=True)
    access = Access(store_s3=store_s3)
    _commit(_plan(files), "s3://keyed/x.icechunk", files, dataset="x", group="x", access=access)
    ds = nc2ice.open("s3://keyed/x.icechunk", "x", endpoint_url=s3_server.endpoint)
    xr.testing.assert_equal(ds.load().drop_attrs(), _sources(files).drop_attrs())
    with pytest.raises(AccessError, match="cannot open the repository.*anonymously at http"):
        nc2ice.open("s3://keyed/x.icechunk", endpoint_url=s3_server.endpoint, anonymous=True)
