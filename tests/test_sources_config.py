"""Listing sources, naming files, and the config."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from nc2ice import config as config_mod
from nc2ice.access import Access, AccessError, normalize_url, prefix_of
from nc2ice.sources.files import expand, file_ids, read_sources_file

SCHEMA = Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def test_file_ids_are_readable_and_unique():
    urls = ["https://h/a/tas_2000.nc", "https://h/b/tas_2000.nc", "s3://b/x y.nc4"]
    ids = file_ids(urls)
    assert ids[2] == "x_y"
    assert ids[0].startswith("tas_2000-") and ids[0] != ids[1]
    assert file_ids(urls) == ids


def test_local_globs_and_sources_files(tmp_path):
    for name in ("b.nc", "a.nc", "c.txt"):
        (tmp_path / name).write_text("x")
    assert list(expand([str(tmp_path / "*.nc")], Access())) == [
        f"file://{tmp_path}/a.nc",
        f"file://{tmp_path}/b.nc",
    ]
    listing = tmp_path / "list.txt"
    listing.write_text("# archive\nhttps://h/a.nc\n\n  https://h/b.nc  \n")
    assert read_sources_file(listing) == ["https://h/a.nc", "https://h/b.nc"]
    with pytest.raises(AccessError, match="matches no file"):
        expand([str(tmp_path / "*.grib")], Access())


def test_prefixes_and_urls():
    assert (
        prefix_of("https://thredds.nci.org.au/thredds/fileServer/x.nc")
        == "https://thredds.nci.org.au/"
    )
    assert prefix_of("s3://bucket/key/x.nc") == "s3://bucket/"
    assert prefix_of("file:///g/data/a/x.nc") == "file:///g/data/a/"
    assert normalize_url("/data/*.nc") == "file:///data/*.nc"
    with pytest.raises(AccessError, match="unsupported URL scheme 'ftp'"):
        normalize_url("ftp://host/x.nc")


def test_default_ports_are_dropped_and_others_refused_at_listing():
    assert normalize_url("http://h:80/x.nc") == "http://h/x.nc"
    assert normalize_url("https://h:443/x.nc") == "https://h/x.nc"
    assert normalize_url("https://h:80/x.nc") == "https://h:80/x.nc"
    assert list(expand(["http://h:80/a.nc", "http://h/a.nc"], Access())) == ["http://h/a.nc"]
    with pytest.raises(AccessError) as err:
        expand(["http://127.0.0.1:8080/thredds/fileServer/x.nc"], Access())
    message = str(err.value)
    assert message.startswith("http://127.0.0.1:8080/thredds/fileServer/x.nc: ")
    assert "port 8080" in message and "Icechunk" in message and "proxy" in message
    assert len(message.splitlines()) == 1


def _config(datasets, **rest):
    return {"datasets": datasets, **rest}


def test_defaults_are_filled():
    config = config_mod.validate(_config({"d": {"sources": ["x.nc"]}}), SCHEMA)
    d = config["datasets"]["d"]
    assert d["concat_dim"] == "time" and d["on_error"] == "fail"
    assert d["max_materialized_fraction"] == 0.1
    assert config["http"]["max_connections"] == 10 and config["store"]["root"] == "results/stores"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (_config({"d": {"sourcse": ["x"]}}), "datasets.d"),
        (_config({"d": {"sources": ["x"], "on_error": "ignore"}}), "datasets.d.on_error"),
        (_config({"d": {}}), "give 'sources' or 'sources_file'"),
        (_config({"d": {"sources": ["x"]}}, htp={}), "htp"),
        (_config({"bad name": {"sources": ["x"]}}), "datasets.bad name"),
    ],
)
def test_config_errors_name_the_key(config, message):
    with pytest.raises(config_mod.ConfigError, match=message):
        config_mod.validate(config, SCHEMA)


def test_user_configfile_replaces_the_demo_datasets(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text(yaml.safe_dump({"datasets": {"mine": {"sources": ["a.nc"]}}}))
    merged = {"datasets": {"demo": {"demo": True}, "mine": {"sources": ["a.nc"]}}}
    assert list(config_mod.with_user_datasets(merged, [str(user)])["datasets"]) == ["mine"]
    assert config_mod.with_user_datasets(merged, []) is merged


def test_paths_expand_variables_and_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", "/home/me")
    monkeypatch.setenv("NC2ICE_T_DATA", "/g/data/ab12")
    monkeypatch.setenv("NC2ICE_T_HOST", "thredds.example.org")
    datasets = {
        "d": {
            "sources": [
                "$NC2ICE_T_DATA/cmip/*.nc",
                "~/more/x.nc",
                "https://${NC2ICE_T_HOST}/thredds/fileServer/price$$1.nc",
                {"thredds": "https://$NC2ICE_T_HOST/thredds/catalog.xml", "include": "$x*"},
            ],
        },
        "e": {"sources_file": "~/lists/${NC2ICE_T_HOST}.txt"},
    }
    store = {"root": "$NC2ICE_T_DATA/$NC2ICE_T_HOST/stores"}
    user = tmp_path / "mine.yaml"
    user.write_text(yaml.safe_dump(_config(datasets, store=store)))
    config, variables = config_mod.load(_config(datasets, store=store), [str(user)], SCHEMA)
    sources = config["datasets"]["d"]["sources"]
    assert sources[:3] == [
        "/g/data/ab12/cmip/*.nc",
        "/home/me/more/x.nc",
        "https://thredds.example.org/thredds/fileServer/price$1.nc",
    ]
    assert sources[3] == {
        "thredds": "https://thredds.example.org/thredds/catalog.xml",
        "include": "$x*",  # a glob on names, not a path
        "depth": 3,
    }
    assert config["datasets"]["e"]["sources_file"] == "/home/me/lists/thredds.example.org.txt"
    assert config["store"]["root"] == "/g/data/ab12/thredds.example.org/stores"
    assert config_mod.store_location(config, "d") == (
        "file:///g/data/ab12/thredds.example.org/stores/d.icechunk",
        "",
    )
    assert variables == ["HOME", "NC2ICE_T_DATA", "NC2ICE_T_HOST"]
    shared = config_mod.validate(_config(datasets, store={"repository": "~/all.icechunk"}), SCHEMA)
    assert shared["store"]["repository"] == "/home/me/all.icechunk"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"store": {"root": "/g/data/xy12/$NC2ICE_T_UNSET/stores"}},
            r"^store.root: \$NC2ICE_T_UNSET is not set",
        ),
        (
            {"store": {"repository": "${NC2ICE_T_EMPTY}/all.icechunk"}},
            r"^store.repository: \$NC2ICE_T_EMPTY is not set",
        ),
        (
            {"sources": ["${NC2ICE_T_UNSET}/*.nc"]},
            r"^datasets.d.sources.0: \$NC2ICE_T_UNSET is not set",
        ),
        (
            {"sources": [{"thredds": "https://$NC2ICE_T_UNSET/c.xml"}]},
            r"^datasets.d.sources.0.thredds: ",
        ),
        ({"sources_file": "$NC2ICE_T_UNSET.txt"}, r"^datasets.d.sources_file: \$NC2ICE_T_UNSET"),
        ({"sources": ["/data/${1}/x.nc"]}, r"^datasets.d.sources.0: .*'\$\{1\}' is not a variable"),
        ({"sources": ["~nc2ice_no_such_user/x.nc"]}, r"^datasets.d.sources.0: .*no user"),
    ],
)
def test_a_variable_that_is_not_set_is_refused_naming_the_key(monkeypatch, settings, message):
    monkeypatch.delenv("NC2ICE_T_UNSET", raising=False)
    monkeypatch.setenv("NC2ICE_T_EMPTY", "")
    dataset = {"sources": ["/data/x.nc"], **{k: v for k, v in settings.items() if k != "store"}}
    config = _config({"d": dataset}, **{k: v for k, v in settings.items() if k == "store"})
    with pytest.raises(config_mod.ConfigError, match=message) as err:
        config_mod.validate(config, SCHEMA)
    assert len(str(err.value).splitlines()) == 1


def test_a_path_variable_batch_jobs_cannot_get_unchanged_is_refused(monkeypatch):
    monkeypatch.setenv("NC2ICE_T_QUOTED", "/g/data/it's")
    config = _config({"d": {"sources": ["$NC2ICE_T_QUOTED/*.nc"]}})
    assert config_mod.validate(copy.deepcopy(config), SCHEMA)  # a local run passes it on
    config["cluster"] = {"scheduler": "pbs", "project": "ab12"}
    with pytest.raises(config_mod.ConfigError, match=r"^\$NC2ICE_T_QUOTED: .* batch jobs"):
        config_mod.validate(config, SCHEMA)


def test_parts_of_a_fused_dataset(tmp_path, monkeypatch):
    """Parts as a mapping or a list (in order), each with sources of its own (expanded like
    a dataset's); a file listed by two parts is refused."""
    from nc2ice.sources.files import expand_parts, file_parts, part_patterns

    monkeypatch.setenv("ARCHIVE", str(tmp_path))
    parts = [
        {"name": "temp", "sources": ["$ARCHIVE/t*.nc"]},
        {"name": "sal", "sources": ["$ARCHIVE/s*.nc"], "rename": {"thetao": "thetao_2"}},
    ]
    config = config_mod.validate(
        _config({"d": {"parts": parts, "coordinate_tolerance": 1e-6}}), SCHEMA
    )
    d = config["datasets"]["d"]
    assert list(d["parts"]) == ["temp", "sal"]
    assert part_patterns(d) == {"temp": [f"{tmp_path}/t*.nc"], "sal": [f"{tmp_path}/s*.nc"]}
    for name in ("t1.nc", "s1.nc"):
        (tmp_path / name).write_text("x")
    origins: dict[str, str] = {}
    listed = expand_parts(d, Access(), 1, origins)
    assert list(listed) == [normalize_url(str(tmp_path / n)) for n in ("t1.nc", "s1.nc")]
    from nc2ice.sources.files import Source

    sources = [Source(f, u, origin=origins[u]) for f, u in zip(("t1", "s1"), listed)]
    assert file_parts(d, sources) == {"t1": "temp", "s1": "sal"}
    d["parts"]["sal"]["sources"].append(f"{tmp_path}/t1.nc")
    with pytest.raises(AccessError, match="listed by part 'temp' and by part 'sal'"):
        expand_parts(d, Access(), 1, {})
    assert config_mod.store_settings(d)["parts"]["sal"] == {"rename": {"thetao": "thetao_2"}}


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ({"sources": ["x"], "parts": {"a": {"sources": ["y"]}}}, "either 'parts' or 'sources'"),
        ({"parts": {"a": {"rename": {"x": "y"}}}}, "datasets.d.parts.a: give 'sources'"),
        ({"parts": {"a": {"sources": ["y"], "concat": "t"}}}, "datasets.d.parts"),
        (
            {"parts": [{"name": "a", "sources": ["y"]}, {"name": "a", "sources": ["z"]}]},
            "two parts",
        ),
    ],
)
def test_parts_config_errors_name_the_key(dataset, message):
    with pytest.raises(config_mod.ConfigError, match=message):
        config_mod.validate(_config({"d": dataset}), SCHEMA)


def test_a_tolerance_written_1e_6_is_a_number(tmp_path):
    from nc2ice.combine.fusion import tolerance_for

    dataset = {"parts": {"a": {"sources": ["x"]}}}
    for written in ("1e-6", "{lat: 1e-6}"):
        loaded = yaml.safe_load(f"coordinate_tolerance: {written}")
        config = config_mod.validate(_config({"d": {**dataset, **loaded}}), SCHEMA)
        assert tolerance_for(config["datasets"]["d"]["coordinate_tolerance"], "lat") == 1e-6
    with pytest.raises(config_mod.ConfigError, match="coordinate_tolerance"):
        config_mod.validate(_config({"d": {**dataset, "coordinate_tolerance": "-1"}}), SCHEMA)
