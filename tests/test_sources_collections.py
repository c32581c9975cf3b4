"""Datasets from ESM collection catalogs: the query, the groups, their names, group paths,
attributes and jobs, and the refusals that name what to change."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import run_workflow
from esm import GROUPBY, add_file, write_catalog

import nc2ice
from nc2ice import config as config_mod
from nc2ice.errors import ConfigError
from nc2ice.sources import collections

SCHEMA = config_mod.Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return write_catalog(tmp_path_factory.mktemp("esm"), years=(2000, 2001))


def loaded(tmp_path, collection: dict, **top) -> dict:
    user = tmp_path / "user.yaml"
    user.write_text(yaml.safe_dump({"collections": {"cmip6": collection}, **top}))
    demo = yaml.safe_load((SCHEMA.parents[2] / "config/config.yaml").read_text())
    demo.update(top)  # as Snakemake merges a --configfile into the config
    config, _ = config_mod.load(demo, [str(user)], SCHEMA, expand=collections.expand)
    return config


def test_each_group_of_the_query_is_a_dataset_in_one_repository(tmp_path, catalog):
    config = loaded(tmp_path, {"catalog": str(catalog), "query": {"experiment_id": "hist*"}})
    names = sorted(config["datasets"])
    assert len(names) == 3 * 2  # 3 models x 2 variables, historical only
    name = "cmip6.ACCESS-CM2.historical.Amon.tas"
    dataset = config["datasets"][name]
    assert dataset["group"] == "ACCESS-CM2/historical/Amon/tas"
    assert dataset["attributes"] == dict(
        zip(GROUPBY, ["ACCESS-CM2", "historical", "Amon", "tas"], strict=True)
    )
    assert dataset["concat_dim"] == "time"  # the catalog's join_existing dim
    assert len(dataset["sources"]) == 2 and all("historical" in s for s in dataset["sources"])
    assert dataset["repository"].endswith("results/stores/cmip6.icechunk")
    assert config_mod.store_location(config, name)[1] == "ACCESS-CM2/historical/Amon/tas"
    # small datasets share jobs: 2 files each, 200 files a job -> one job
    assert {d["bundle"] for d in config["datasets"].values()} == {"cmip6-00000"}
    assert "demo" not in config["datasets"]  # a user's collection replaces the demo
    # one container for the collection's folders, not one per folder
    assert {d["container"] for d in config["datasets"].values()} == {catalog.parent.as_uri() + "/"}


def test_queries_lists_and_settings_reach_every_dataset(tmp_path, catalog):
    collection = {
        "catalog": str(catalog),
        "query": {"source_id": ["CESM2", "ACCESS-CM2"], "variable_id": "pr"},
        "group": "{variable_id}/{source_id}-{experiment_id}",
        "files_per_job": 4,
        "settings": {"on_error": "skip", "attributes": {"project": "test"}},
    }
    config = loaded(tmp_path, collection)
    datasets = config["datasets"]
    assert sorted(d["group"] for d in datasets.values()) == [
        "pr/ACCESS-CM2-historical",
        "pr/ACCESS-CM2-ssp585",
        "pr/CESM2-historical",
        "pr/CESM2-ssp585",
    ]
    assert all(d["on_error"] == "skip" for d in datasets.values())
    assert all(d["attributes"]["project"] == "test" for d in datasets.values())
    # the schema's defaults, checked once for the collection, reach each of its datasets
    assert all(d["head_bytes"] == 262144 and d["variables"] == "all" for d in datasets.values())
    assert sorted({d["bundle"] for d in datasets.values()}) == ["cmip6-00000", "cmip6-00001"]


def test_relative_paths_are_taken_from_the_catalogs_folder(tmp_path):
    catalog = write_catalog(tmp_path / "rel", years=(2000,), models=("CESM2",), relative=True)
    config = loaded(tmp_path, {"catalog": catalog.as_uri()})
    sources = [s for d in config["datasets"].values() for s in d["sources"]]
    assert sources and all(s.startswith(f"file://{tmp_path}/rel/CESM2/") for s in sources)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"query": {"model": "x"}}, "no column ['model'] in the catalog"),
        ({"groupby": ["source_id", "experiment_id"]}, "several variables ['pr', 'tas']"),
        ({"group": "{source_id}"}, "lies inside it"),
        ({"group": "{nope}/{source_id}"}, "names 'nope', not a column"),
        ({"query": {"source_id": "none"}}, "the collections' queries select no asset"),
        ({"settings": {"on_error": "maybe"}}, "on_error: 'maybe' is not one of"),
    ],
)
def test_what_cannot_be_a_dataset_is_refused_naming_it(tmp_path, catalog, change, says):
    with pytest.raises(ConfigError, match=r".*") as caught:
        loaded(tmp_path, {"catalog": str(catalog), **change})
    assert says in str(caught.value)


def test_a_collection_in_another_datasets_repository_is_refused(tmp_path, catalog):
    """A dataset with a repository of its own owns all of it: a collection may not add its
    groups there (nor to the same repository spelt with a trailing slash)."""
    own = str(tmp_path / "stores" / "cmip6.icechunk")
    with pytest.raises(ConfigError, match="lies inside it"):
        loaded(
            tmp_path,
            {"catalog": str(catalog), "repository": own + "/"},
            datasets={"cmip6": {"sources": [str(catalog.parent / "*.nc")]}},
            store={"root": str(tmp_path / "stores")},
        )


def test_an_asset_is_one_file_never_a_pattern(tmp_path):
    catalog = write_catalog(tmp_path / "odd[1]", years=(2000,), models=("CESM2",))
    config = loaded(tmp_path, {"catalog": str(catalog)})
    sources = [s for d in config["datasets"].values() for s in d["sources"]]
    assert sources and all("odd[[]1]" in s for s in sources)  # glob.escape: the name itself


def test_a_catalog_of_zarr_stores_is_refused(tmp_path, catalog):
    spec = json.loads(catalog.read_text())
    spec["assets"]["format"] = "zarr"
    spec["catalog_file"] = str(catalog.with_suffix(".csv"))
    other = tmp_path / "zarr.json"
    other.write_text(json.dumps(spec))
    with pytest.raises(ConfigError, match="not netCDF files"):
        loaded(tmp_path, {"catalog": str(other)})


def test_a_missing_catalog_names_its_path(tmp_path):
    with pytest.raises(ConfigError, match="nowhere.json: cannot read the catalog"):
        loaded(tmp_path, {"catalog": str(tmp_path / "nowhere.json")})


def test_the_groups_are_intake_esms(catalog):
    """The same groups as intake-esm makes of the same catalog and query."""
    intake_esm = pytest.importorskip("intake_esm")
    query = {"experiment_id": "ssp585"}
    ours = collections.read_catalog(str(catalog), collections.Access())
    table = collections.select(ours, query, "test")
    keys = {".".join(k) for k, _ in table.groupby(GROUPBY)}
    cat = intake_esm.esm_datastore(str(catalog)).search(**query)
    assert keys == set(cat.keys())
    assert len(table) == len(cat.df)


@pytest.mark.e2e
def test_a_catalog_queried_over_http_reads_back_as_its_files(tmp_path, http_server, http_root):
    """A catalog served over HTTP with paths relative to it, queried: every group becomes a
    dataset in one repository, bundled many to a job; the tree reads back as the files, each
    group with its columns as attributes, and the root's index lists them.  A file added to
    one group is appended by the rerun, which leaves the others as they were."""
    folder = http_root / "esm-e2e"
    write_catalog(folder, years=(2000, 2001), relative=True)
    query = {"experiment_id": ["historical", "ssp585"], "variable_id": "*"}
    collection = {"catalog": f"{http_server.url}/esm-e2e/catalog.json", "query": query}
    store = tmp_path / "cmip6.icechunk"
    config = {
        "collections": {"cmip6": {**collection, "files_per_job": 8}},
        "store": {"repository": str(store)},
    }
    run_workflow(tmp_path / "run", config)
    bundles = sorted((tmp_path / "run/results/bundles").glob("cmip6-?????.json"))
    assert len(bundles) == 3  # 12 datasets of 2 files, 8 files a job
    before = _assert_tree_is_the_files(store, folder)
    assert len(before) == 12
    tree = nc2ice.open(str(store))  # as a reader opens it: the whole tree, with its index
    assert sorted(tree.attrs["nc2ice_datasets"]) == sorted(before)
    assert tree["CESM2/ssp585/Amon/pr"].attrs["experiment_id"] == "ssp585"

    add_file(folder, "CESM2", "historical", "tas", 2002, relative=True)
    run_workflow(tmp_path / "run", config)
    after = _assert_tree_is_the_files(store, folder)
    grown = "CESM2/historical/Amon/tas"
    assert after[grown]["snapshot"] != before[grown]["snapshot"]
    assert after[grown]["files"] == 3
    assert {g: e["snapshot"] for g, e in after.items() if g != grown} == {
        g: e["snapshot"] for g, e in before.items() if g != grown
    }
    assert "cmip6.CESM2.historical.Amon.tas: appended 1 file(s)" in _logs(tmp_path)


def _assert_tree_is_the_files(store, folder) -> dict:
    """Every group of the tree equals the concatenation of its files; the index."""
    import xarray as xr

    from nc2ice.access import Access
    from nc2ice.store.contents import read_index
    from nc2ice.store.repository import open_repository

    repo = open_repository(f"file://{store}", Access())
    tree = xr.open_datatree(repo.readonly_session("main").store, engine="zarr", consolidated=False)
    index = read_index(repo)
    for group, entry in index.items():
        model, experiment, table, variable = group.split("/")
        files = sorted((folder / model / experiment).glob(f"{variable}_*.nc"))
        want = xr.concat([xr.open_dataset(f) for f in files], dim="time")
        got = tree[group].to_dataset()
        xr.testing.assert_equal(got.drop_attrs(), want.drop_attrs())
        assert got.attrs["source_id"] == model and got.attrs["table_id"] == table
        assert entry["files"] == len(files)
    assert len(index) == len([g for g in tree.subtree if g.is_leaf])
    return index


def _logs(tmp_path) -> str:
    return "".join(p.read_text() for p in (tmp_path / "run/results/logs/bundles").glob("*.log"))
