"""THREDDS catalog sources (issue 9): nested catalogs, compound services, dates, refusals."""

from __future__ import annotations

import pytest
from archives import clean
from catalogs import place_files, write_tree
from conftest import commit_record, run_workflow, validation

from nc2ice.access import Access
from nc2ice.errors import AccessError
from nc2ice.sources.thredds import crawl

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def catalog(http_server, http_root, tmp_path_factory):
    made = tmp_path_factory.mktemp("tds")
    files = {
        2000: clean(made / "a", years=(2000,)) + [clean(made / "b", years=(2001,))[0]],
        2002: clean(made / "c", years=(2002,)),
    }
    served = place_files(http_root, files)
    path = write_tree(http_root, served)
    write_tree(http_root / "broken", served, broken_ref=True)
    return {"url": f"{http_server.url}/{path}", "files": served}


def test_catalogs_are_followed_to_their_file_server_urls(catalog, http_server):
    found = crawl(catalog["url"], Access(), depth=3)
    base = f"{http_server.url}/thredds/fileServer/cmip"
    assert sorted(found.files) == [
        f"{base}/2000/tas_2000.nc",
        f"{base}/2000/tas_2001.nc",
        f"{base}/2002/tas_2002.nc",
    ]
    assert found.catalogs == 3
    first = found.files[f"{base}/2000/tas_2000.nc"]
    assert first["last_modified"].endswith("+00:00") and first["size"] == 0  # never a rounded size
    assert any("tas_dap_only.nc: left out" in n and "opendap" in n for n in found.notes)


def test_include_exclude_and_depth(catalog):
    only = crawl(catalog["url"], Access(), include="tas_200[01].nc", exclude="*2001*")
    assert [u.rsplit("/", 1)[1] for u in only.files] == ["tas_2000.nc"]
    shallow = crawl(catalog["url"], Access(), depth=0)
    assert not shallow.files and "were not followed" in shallow.notes[-1]


def test_a_catalog_that_is_not_there_names_itself(catalog, http_server):
    broken = catalog["url"].replace("/thredds/", "/broken/thredds/")
    with pytest.raises(AccessError, match="missing/catalog.xml: cannot read the THREDDS catalog"):
        crawl(broken, Access())


def test_a_dataset_from_a_catalog_needs_no_head_request(tmp_path, catalog, http_server):
    config = {
        "datasets": {"tds": {"sources": [{"thredds": catalog["url"], "include": "tas_*.nc"}]}},
        "store": {"root": str(tmp_path / "stores")},
    }
    http_server.reset_counts()
    run_workflow(tmp_path / "run", config)
    assert validation(tmp_path / "run", "tds")["passed"] is True
    assert len(commit_record(tmp_path / "run", "tds")["files"]) == 3
    assert http_server.requests["HEAD"] == 0
    again = run_workflow(tmp_path / "run", config).stderr  # the catalog's dates say: unchanged
    assert "tds: nothing changed" in again and http_server.requests["HEAD"] == 0


OLD_STYLE = """<?xml version="1.0" encoding="UTF-8"?>
<catalog xmlns="http://www.unidata.ucar.edu/namespaces/thredds/InvCatalog/v1.0" version="1.0"
         base="https://tds.example.org/thredds/catalog/ocean/catalog.xml">
  <service name="files" serviceType="HTTPServer" base="/thredds/fileServer" />
  <service name="dap" serviceType="OPENDAP" base="/thredds/dodsC/" />
  <dataset name="Near-surface temperature" serviceName="files" urlPath="/ocean/tas_2020.nc">
    <date type="modified">2020-02-03T04:05:06Z</date>
    <dataset name="A later version" urlPath="ocean/v2/tas_2020.nc">
      <metadata><serviceName>FILES</serviceName></metadata>
      <date type="modified">2024-01-01T00:00:00Z</date>
    </dataset>
    <dataset name="Salinity">
      <access serviceName="dap" urlPath="ocean/so_2020.nc" />
      <access serviceName="files" urlPath="ocean/so_2020.nc" />
    </dataset>
  </dataset>
</catalog>
"""


def test_catalogs_written_the_older_way_are_read_as_their_server_means_them():
    """The serviceName attribute, a base without its final slash, a urlPath with a leading
    one, access elements, a catalog base, service names in another case, dates of nested
    datasets, names that are not file names."""
    import xml.etree.ElementTree as ET

    from nc2ice.sources.thredds import Found, _read

    url = "https://mirror.example.org/catalog.xml"  # the catalog's base says where it lives
    found = Found()
    assert _read(url, ET.fromstring(OLD_STYLE), found, "tas_*.nc", None) == []
    base = "https://tds.example.org/thredds/fileServer/ocean"
    dates = {u: f["last_modified"] for u, f in found.files.items()}
    assert dates == {
        f"{base}/tas_2020.nc": "2020-02-03T04:05:06+00:00",
        f"{base}/v2/tas_2020.nc": "2024-01-01T00:00:00+00:00",
    }
    assert all(f["size"] == 0 and f["etag"] == "" for f in found.files.values())
    everything = Found()
    _read(url, ET.fromstring(OLD_STYLE), everything, None, "A later *")
    assert sorted(everything.files) == [f"{base}/so_2020.nc", f"{base}/tas_2020.nc"]
    assert everything.files[f"{base}/so_2020.nc"] is None  # no date: the listing asks (HEAD)


def test_a_catalog_removed_from_the_sources_is_dropped_not_gone(tmp_path, catalog):
    """Removing a catalog entry drops its files on purpose (as removing a URL does); it is
    not files vanishing from the server, which `on_vanished: fail` would refuse."""
    from nc2ice.sources.listing import list_dataset

    years = [catalog["url"].replace("catalog.xml", f"{y}/catalog.xml") for y in (2000, 2002)]
    ds = {"on_error": "fail", "on_vanished": "fail", "batch_size": 250}
    results = tmp_path / "results" / "tds"

    def listed(sources):
        config = {"datasets": {"tds": {**ds, "sources": sources}}, "http": {"max_connections": 2}}
        return list_dataset(config, "tds", results / "sources.tsv", results / "batches")

    both = listed([{"thredds": url} for url in years])
    assert len(both.sources) == 3 and {s.origin for s in both.sources} == set(years)
    one = listed([{"thredds": years[0]}])
    assert not one.gone and [s.url.rsplit("/", 1)[1] for s in one.sources] == [
        "tas_2000.nc",
        "tas_2001.nc",
    ]
