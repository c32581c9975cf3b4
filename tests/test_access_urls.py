"""URLs and versions of sources (issue 14, items 9, 14, 15): local paths with characters that
URLs encode, reads tied to one version of a file, and URLs that carry a password."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from aiohttp import web
from archives import clean
from servers import free_port

from nc2ice import config as config_mod
from nc2ice.access import (
    Access,
    canonical_url,
    local_path,
    masked,
    normalize_url,
    prefix_of,
    referenceable_url,
)
from nc2ice.errors import AccessError, ScanError
from nc2ice.model.chunks import read_region, whole
from nc2ice.model.index import scanned_versions
from nc2ice.scan.formats import run_steps
from nc2ice.scan.scanner import open_source, parse, scan_batch, scan_file
from nc2ice.sources.files import Source, expand, file_ids, patterns, read_table, write_table
from nc2ice.sources.listing import list_dataset

SCHEMA = Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml"
ODD = ["run #2", "a b", "50%", "q?x", "br[1]", "st*r", "ü"]  # folder names URLs encode


# -- item 9: local paths as percent-encoded file:// URLs ---------------------------------------


@pytest.mark.parametrize("name", ODD)
def test_a_local_path_becomes_an_encoded_url_and_back(tmp_path, name):
    path = tmp_path / name / "x y#1%.nc"
    url = normalize_url(str(path))
    parts = urlsplit(url)
    assert not parts.fragment and not parts.query and " " not in url
    assert local_path(url) == path
    assert normalize_url(url) == url  # canonical: encoding twice changes nothing
    assert normalize_url("file://" + str(path)) == url  # a file:// URL typed unencoded
    assert prefix_of(url) == f"file://{tmp_path}/" or name == "st*r"


def test_plain_paths_keep_the_urls_they_had():
    # what older versions wrote: manifests, tables and stores of such files stay valid
    for path in ("/g/data/xy12/tas_2000.nc", "/d/a+b,c=d;e:f@g(1)!'$&~/x-y_z.nc"):
        assert normalize_url(path) == "file://" + path
    assert normalize_url("/data/*.nc") == "file:///data/*.nc"


def test_the_container_prefix_is_the_deepest_plain_folder():
    assert prefix_of(normalize_url("/d/ok/run #2/a b/x.nc")) == "file:///d/ok/"
    assert prefix_of(normalize_url("/d/ok/more/x.nc")) == "file:///d/ok/more/"
    for path, why in (("/a b/x.nc", "'a b'"), ("/x.nc", "it lies in /")):
        with pytest.raises(AccessError) as err:
            referenceable_url(path)
        assert why in str(err.value) and len(str(err.value).splitlines()) == 1
    with pytest.raises(AccessError, match="control character"):
        referenceable_url("/d/tab\there/x.nc")


def test_globs_are_expanded_on_paths_before_they_become_urls(tmp_path):
    files = {name: clean(tmp_path / name, years=(2000, 2001)) for name in ODD}
    for name, made in files.items():
        found = expand([str(tmp_path / name / "*.nc")], Access())
        assert [local_path(u) for u in found] == made, name
        assert all(
            meta and meta["size"] == f.stat().st_size for f, meta in zip(made, found.values())
        )
        literal = expand([str(made[0])], Access())  # a file named as typed is that file
        assert [local_path(u) for u in literal] == [made[0]]
    # a file:// URL, typed unencoded or encoded, names the same files
    raw = expand([f"file://{tmp_path}/run #2/*.nc"], Access())
    encoded = expand([normalize_url(str(tmp_path / "run #2")) + "/*.nc"], Access())
    assert list(raw) == list(encoded) == [normalize_url(str(f)) for f in files["run #2"]]
    with pytest.raises(AccessError, match="matches no file"):
        expand([str(tmp_path / "q?x" / "*.grib")], Access())


def test_local_reads_of_odd_paths(tmp_path):
    path = tmp_path / "run #2" / "50% q?x.bin"
    path.parent.mkdir()
    path.write_bytes(bytes(range(256)) * 10)
    url = normalize_url(str(path))
    access = Access()
    assert access.head(url)["size"] == 2560
    assert access.get_ranges(url, [10, 2000], [5, 3]) == [
        bytes(range(10, 15)),
        bytes([208, 209, 210]),
    ]
    reader = access.reader(url, head_bytes=100)
    reader.seek(300)
    assert reader.read(4) == bytes(range(44, 48))


def test_file_ids_are_read_from_decoded_names():
    assert file_ids(["file:///d/a%20b/tas%232000.nc", "https://h/x%20y.nc"]) == [
        "tas_2000",
        "x_y",
    ]


def test_old_tables_with_unencoded_paths_name_the_same_files(tmp_path):
    """Older versions wrote `file://` + the path as it is: a rerun must see the same files,
    not new ones and gone ones (and rescans them: their manifests point at the old text)."""
    files = clean(tmp_path / "run #2" / "a b", years=(2000, 2001))
    ds = {"sources": [str(tmp_path / "run #2" / "a b" / "*.nc")]}
    config = config_mod.validate({"datasets": {"d": ds}}, SCHEMA)
    results = tmp_path / "results" / "d"
    first = list_dataset(config, "d", results / "sources.tsv", results / "batches")
    assert [s.url for s in first.sources] == [normalize_url(str(f)) for f in files]
    for table in [results / "sources.tsv", *(results / "batches").glob("*.tsv")]:
        old = [
            Source(**{**s.__dict__, "url": "file://" + str(local_path(s.url))})
            for s in read_table(table)
        ]
        write_table(old, table)
        assert "run #2/a b" in table.read_text()
        assert [s.url for s in read_table(table)] == [s.url for s in first.sources]
    again = list_dataset(config, "d", results / "sources.tsv", results / "batches")
    assert not again.new and not again.gone and not again.changed
    assert [s.file_id for s in again.sources] == ["tas_2000", "tas_2001"]
    assert canonical_url("file:///d/50%/x.nc") == "file:///d/50%25/x.nc"


def test_a_manifest_of_an_older_version_s_url_is_scanned_again(tmp_path):
    """Manifests older versions wrote hold the unencoded path in every reference: a file
    whose manifest names another URL than its listing is scanned again, not reused."""
    (path,) = clean(tmp_path / "run #2", years=(2000,))
    sources = [Source("tas_2000", normalize_url(str(path)))]
    options = {"inline_limit": 0, "connections": 1, "head_bytes": 4096, "on_error": "fail"}
    scan_batch(sources, tmp_path / "m", Access(), **options)
    manifest = tmp_path / "m" / "tas_2000.json"
    doc = json.loads(manifest.read_text())
    doc["templates"]["u"] = doc["nc2ice"]["source"] = f"file://{path}"  # as 0.x wrote it
    manifest.write_text(json.dumps(doc))
    (row,) = scan_batch(sources, tmp_path / "m", Access(), **options)
    assert not row.reused
    assert json.loads(manifest.read_text())["templates"]["u"] == sources[0].url


def test_http_and_s3_urls_are_encoded_and_read_decoded(http_server, http_root, s3_server):
    folder = http_root / "odd names" / "run #2"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a b.bin").write_bytes(b"0123456789")
    url = normalize_url(f"{http_server.url}/odd names/run %232/a b.bin")
    assert url == f"{http_server.url}/odd%20names/run%20%232/a%20b.bin"
    assert Access().get_ranges(url, [2], [3]) == [b"234"]  # obstore was sent '%2520'
    s3 = s3_server.client()
    s3.create_bucket(Bucket="odd-keys")
    s3.put_object(Bucket="odd-keys", Key="run #2/a b?.bin", Body=b"abcdef")
    access = Access.from_config(
        {"s3": {"endpoint_url": s3_server.endpoint, "force_path_style": True}}
    )
    found = expand(["s3://odd-keys/run #2/*.bin"], access)
    assert list(found) == ["s3://odd-keys/run%20%232/a%20b%3F.bin"]
    assert access.get_ranges(next(iter(found)), [1], [2]) == [b"bc"]


# -- item 15: URLs with a password ------------------------------------------------------------


SECRET = "hunter2secret"


def _refused(call, *args) -> str:
    with pytest.raises(AccessError) as err:
        call(*args)
    message = str(err.value)
    assert SECRET not in message and len(message.splitlines()) == 1
    assert "***@" in message and "mirror them to S3 or a local folder" in message
    return message


def test_urls_with_a_password_are_refused_with_it_masked(tmp_path, http_server, http_root):
    url = f"https://user:{SECRET}@data.example.org/tas_2000.nc"
    assert _refused(normalize_url, url).startswith(
        "https://user:***@data.example.org/tas_2000.nc: "
    )
    _refused(expand, [url], Access())
    _refused(expand, [f"s3://AKIA:{SECRET}@bucket/x/*.nc"], Access())
    listing = tmp_path / "list.txt"
    listing.write_text(f"# files\nhttps://{SECRET}@data.example.org/a.nc\n")  # a token as user
    _refused(expand, patterns({"sources_file": str(listing)}), Access())
    _refused(expand, [{"thredds": f"https://user:{SECRET}@tds.example.org/catalog.xml"}], Access())
    for store in ({"root": f"https://u:{SECRET}@h/stores"}, {"repository": f"s3://k:{SECRET}@b/r"}):
        _refused(config_mod.store_location, {"store": store}, "d")
    # a catalog on a public server that refers to a catalog behind a password
    (http_root / "secret-ref").mkdir(exist_ok=True)
    (http_root / "secret-ref" / "catalog.xml").write_text(
        '<catalog xmlns="http://www.unidata.ucar.edu/namespaces/thredds/InvCatalog/v1.0" '
        'xmlns:xlink="http://www.w3.org/1999/xlink"><catalogRef '
        f'xlink:href="https://user:{SECRET}@tds.example.org/c.xml" xlink:title="x"/></catalog>'
    )
    _refused(expand, [{"thredds": f"{http_server.url}/secret-ref/catalog.xml"}], Access())
    assert (
        masked(f"see https://u:{SECRET}@h/x and s3://{SECRET}@b/k")
        == "see https://u:***@h/x and s3://***@b/k"
    )
    echoed = Exception(f"Error performing GET https://u:{SECRET}@h/x: 401 Unauthorized")
    assert SECRET not in str(Access().error(f"https://u:{SECRET}@h/x", echoed))


@pytest.mark.e2e
def test_a_run_with_a_password_in_a_url_writes_it_nowhere(tmp_path):
    from conftest import run_workflow

    url = f"https://user:{SECRET}@127.0.0.9/tas_2000.nc"
    config = {"datasets": {"pw": {"sources": [url]}}, "store": {"root": str(tmp_path / "s")}}
    proc = run_workflow(tmp_path / "run", config, check=False)
    assert proc.returncode != 0
    assert (
        "https://user:***@127.0.0.9/tas_2000.nc: a URL with a user name or password" in proc.stderr
    )
    assert SECRET not in proc.stdout + proc.stderr
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file() and p.name != "config.yaml"]
    assert written and not [p for p in written if SECRET.encode() in p.read_bytes()]


# -- item 14: every read of a scan, a copy or a validation sees one version --------------------


def test_a_remote_file_rewritten_between_requests_is_refused(http_server, http_root):
    path = http_root / "versions" / "tas_2000.nc"
    clean(path.parent, years=(2000,))
    url = f"{http_server.url}/versions/tas_2000.nc"
    reader = Access().reader(url, head_bytes=1000)
    reader.fetch_head()
    data = path.read_bytes()
    time.sleep(0.01)
    path.write_bytes(data[::-1])  # the same size, other bytes: only the version tells
    with pytest.raises(AccessError) as err:
        reader.fetch_tail(1000)
    assert str(err.value).startswith(f"{url}: changed while it was read (the server answered 412")
    path.write_bytes(data)


def test_a_scan_does_not_mix_two_versions_of_a_remote_file(http_server, http_root):
    path = http_root / "versions" / "tas_2001.nc"
    clean(path.parent, years=(2001,))
    url = f"{http_server.url}/versions/tas_2001.nc"
    opened = open_source(url, Access(), head_bytes=2000)  # the parse needs more than this
    path.write_bytes(path.read_bytes())  # rewritten: a new Last-Modified and ETag
    with pytest.raises(AccessError, match="changed while it was read"):
        run_steps(parse(opened, 0))
    manifest = scan_file(url, Access(), inline_limit=0, head_bytes=2000)  # a rerun scans it
    assert manifest.identity["etag"] == Access().head(url)["etag"]


def test_s3_reads_are_tied_to_the_first_response(s3_server):
    s3 = s3_server.client()
    s3.create_bucket(Bucket="versions")
    s3.put_object(Bucket="versions", Key="x.bin", Body=b"a" * 100)
    access = Access.from_config(
        {"s3": {"endpoint_url": s3_server.endpoint, "force_path_style": True}}
    )
    reader = access.reader("s3://versions/x.bin", head_bytes=10)
    reader.fetch_head()
    s3.put_object(Bucket="versions", Key="x.bin", Body=b"b" * 100)
    with pytest.raises(AccessError, match="412 to a read tied to ETag"):
        reader.fetch(50, 60)


class WeakServer:
    """A server with a weak ETag (as Tomcat's, THREDDS's) that answers Range and the
    conditional headers strictly: a weak ETag never matches If-Match."""

    def __init__(self, body: bytes):
        self.body, self.modified = body, datetime(2020, 1, 1, tzinfo=UTC)
        self.port = free_port()
        self.asked: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.asked.append(dict(request.headers))
        since = request.headers.get("If-Unmodified-Since")
        if "If-Match" in request.headers or (
            since and self.modified > parsedate_to_datetime(since)
        ):
            return web.Response(status=412)
        start, end = request.http_range.start or 0, request.http_range.stop or len(self.body)
        headers = {
            "ETag": f'W/"{self.modified.timestamp():.0f}"',
            "Last-Modified": format_datetime(self.modified, usegmt=True),
            "Content-Range": f"bytes {start}-{end - 1}/{len(self.body)}",
        }
        return web.Response(status=206, body=self.body[start:end], headers=headers)

    def start(self) -> str:
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            app = web.Application()
            app.router.add_get("/{p:.*}", self.handle)
            runner = web.AppRunner(app)
            loop.run_until_complete(runner.setup())
            host = os.environ.get("NC2ICE_TEST_HTTP_HOST", "127.0.0.1")
            loop.run_until_complete(web.TCPSite(runner, host, self.port).start())
            loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        time.sleep(0.3)
        return f"http://{os.environ.get('NC2ICE_TEST_HTTP_HOST', '127.0.0.1')}:{self.port}"


def test_a_weak_etag_is_never_used_with_if_match():
    server = WeakServer(bytes(range(200)))
    reader = Access().reader(server.start() + "/x.bin", head_bytes=10)
    reader.fetch_head()
    reader.fetch(100, 110)  # unchanged: served (If-Match with a weak ETag would be a 412)
    assert "If-Match" not in server.asked[-1] and "If-Unmodified-Since" in server.asked[-1]
    server.modified = datetime(2021, 1, 1, tzinfo=UTC)
    with pytest.raises(AccessError, match="412 to a read tied to its Last-Modified"):
        reader.fetch(150, 160)


def test_a_local_file_changed_during_its_scan_is_skipped_and_scanned_again(tmp_path, monkeypatch):
    files = clean(tmp_path / "archive", years=(2000, 2001))
    sources = [Source(f.stem, normalize_url(str(f))) for f in files]
    marker = tmp_path / "paused"
    monkeypatch.setenv("NC2ICE_PAUSE_AT", "scan:parsed")
    monkeypatch.setenv("NC2ICE_PAUSE_MARKER", str(marker))
    monkeypatch.setenv("NC2ICE_PAUSE_SECONDS", "1")
    options = {"inline_limit": 0, "connections": 1, "head_bytes": 4096, "on_error": "skip"}
    rows: list = []
    scan = threading.Thread(
        target=lambda: rows.extend(scan_batch(sources, tmp_path / "m", Access(), **options))
    )
    scan.start()
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.01)
    files[0].write_bytes(files[0].read_bytes())  # the first file, parsed, then rewritten
    scan.join(60)
    assert rows[0].skipped.startswith("changed while it was scanned")
    assert not rows[1].skipped and not (tmp_path / "m" / "tas_2000.json").exists()
    monkeypatch.delenv("NC2ICE_PAUSE_AT")
    again = scan_batch(sources, tmp_path / "m", Access(), **options)
    assert [r.skipped for r in again] == ["", ""] and again[1].reused
    assert again[0].last_modified == Access().head(sources[0].url)["last_modified"]


def test_a_local_file_changed_during_its_scan_fails_it_in_one_line(tmp_path):
    (path,) = clean(tmp_path, years=(2000,))
    url = normalize_url(str(path))
    opened = open_source(url, Access(), 4096)
    manifest = run_steps(parse(opened, 0))
    path.write_bytes(path.read_bytes())
    from nc2ice.scan.scanner import scanned_version

    with pytest.raises(ScanError) as err:
        scanned_version(opened)
    assert str(err.value).startswith(f"{url}: changed while it was scanned (Last-Modified ")
    assert manifest.variables


def test_reads_for_the_commit_are_tied_to_the_scanned_version(tmp_path, http_server, http_root):
    """What the commit copies (chunks.read_region, Access.get_ranges, h5py through
    Access.reader) comes from the version the scan recorded, or the read fails."""
    shutil.rmtree(http_root / "pinned", ignore_errors=True)
    local = clean(tmp_path, years=(2000,))[0]
    served = clean(http_root / "pinned", years=(2000,))[0]
    for url, path in (
        (normalize_url(str(local)), local),
        (f"{http_server.url}/pinned/tas_2000.nc", served),
    ):
        manifest = scan_file(url, Access(), inline_limit=0)
        pinned = Access().pinned({url: manifest.identity})
        tas = manifest.variables["tas"]
        before = read_region(tas, whole(tas), pinned)
        time.sleep(0.01)
        path.write_bytes(path.read_bytes())  # the same bytes, a new version
        with pytest.raises(AccessError, match=f"^{url}: changed while it was read"):
            read_region(tas, whole(tas), pinned)
        with pytest.raises(AccessError, match="changed while it was read"):
            pinned.reader(url).read(10)
        assert (read_region(tas, whole(tas), Access()) == before).all()  # not pinned: read


def test_scanned_versions_are_what_the_commit_pins(tmp_path):
    files = clean(tmp_path / "a", years=(2000,))
    sources = [Source(f.stem, normalize_url(str(f))) for f in files]
    options = {"inline_limit": 0, "connections": 1, "head_bytes": 4096, "on_error": "fail"}
    rows = scan_batch(sources, tmp_path / "m", Access(), **options)
    versions = scanned_versions(rows)
    assert versions == {sources[0].url: Access().head(sources[0].url)}
    assert yaml.safe_dump(versions)  # plain data: it goes into commit.json
