"""THREDDS catalog sources (issue 9): nested catalogs, compound services, dates, refusals."""

from __future__ import annotations

import pytest
from archives import clean
from catalogs import place_files, write_tree
from conftest import commit_record, run_workflow, validation

from nc2ice.access import Access
from nc2ice.errors import AccessError
from nc2ice.thredds import crawl

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
