"""Datasets from ESM collection catalogs: an esmcat JSON and its CSV of assets, queried,
grouped by columns, each group one dataset.

The catalog is read as intake-esm reads it (the esmcat 0.1.0 fields: ``catalog_file`` or
``catalog_dict``, ``assets``, ``aggregation_control``, ``columns_with_iterables``) with pandas
alone: intake-esm itself would bring dask, distributed, bokeh and pydap into every job, and
its ``to_dataset_dict`` is not used here (the pipeline reads the files itself).  A test
checks that the groups are the ones intake-esm makes.
"""

from __future__ import annotations

import ast
import fnmatch
import glob
import io
import json
import os
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pandas as pd

from nc2ice.access import Access, local_path, normalize_url, plain_prefix
from nc2ice.errors import AccessError, ConfigError

NETCDF_FORMATS = {"netcdf", "netcdf3", "netcdf4", "nc", "nc3", "nc4", "hdf5"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_COLUMN = re.compile(r"[^\W\d][\w-]*")  # a column's name in a group path template


@dataclass
class Catalog:
    """An esmcat catalog's assets and how it says they aggregate."""

    url: str
    table: pd.DataFrame
    path_column: str
    format: str | None
    format_column: str | None
    groupby: list[str]
    variable_column: str | None
    join_dim: str | None
    iterables: list[str]


def expand(config: dict[str, Any]) -> dict[str, Any]:
    """``datasets`` with every collection's datasets added (a name taken twice is refused)."""
    datasets = dict(config["datasets"])
    access = Access.from_config(config)
    for name, collection in (config.get("collections") or {}).items():
        catalog = read_catalog(collection["catalog"], access)
        for dataset, entry in collection_datasets(name, collection, catalog, config).items():
            if dataset in datasets:
                raise ConfigError(f"collections.{name}: dataset {dataset!r} is also configured")
            datasets[dataset] = entry
    return {"datasets": datasets}


def read_catalog(location: str, access: Access) -> Catalog:
    """The catalog at ``location`` (a path or URL), its CSV read whole."""
    url = normalize_url(location)
    spec = _json(url, access)
    try:
        assets = spec["assets"]
        control = spec.get("aggregation_control") or {}
        if "catalog_dict" in spec:
            table = pd.DataFrame(spec["catalog_dict"])
        else:
            csv_url = _beside(url, spec["catalog_file"])
            table = pd.read_csv(
                io.BytesIO(_bytes(csv_url, access)),
                compression="gzip" if csv_url.endswith(".gz") else None,
                dtype=str,
                keep_default_na=False,
            )
        join = [a for a in control.get("aggregations", []) if a.get("type") == "join_existing"]
        catalog = Catalog(
            url=url,
            table=table,
            path_column=assets["column_name"],
            format=assets.get("format"),
            format_column=assets.get("format_column_name"),
            groupby=list(control.get("groupby_attrs") or []),
            variable_column=control.get("variable_column_name"),
            join_dim=(join[0].get("options") or {}).get("dim") if join else None,
            iterables=list(spec.get("columns_with_iterables") or []),
        )
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{url}: not an ESM collection catalog (esmcat): no {exc}") from None
    for column in catalog.iterables:
        if column in table:
            table[column] = table[column].map(_as_tuple)
    return catalog


def collection_datasets(
    name: str, collection: dict[str, Any], catalog: Catalog, config: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """One dataset per group of the assets the query selects, with its sources, group path,
    attributes (the group's column values), repository and, if small, the job it shares."""
    where = f"collections.{name}"
    table = select(catalog, collection.get("query") or {}, where)
    groupby = collection.get("groupby") or catalog.groupby
    if not groupby:
        raise ConfigError(f"{where}: the catalog names no groupby_attrs: set groupby")
    _known(catalog.table, groupby, f"{where}.groupby")
    template = collection.get("group") or "/".join(f"{{{c}}}" for c in groupby)
    repository = collection.get("repository") or config["store"].get("repository")
    repository = repository or f"{str(config['store']['root']).rstrip('/')}/{name}.icechunk"
    repository = normalize_url(repository)  # once, not once per dataset (a path is resolved)
    settings = dict(collection.get("settings") or {})
    if catalog.join_dim:
        settings.setdefault("concat_dim", catalog.join_dim)
    if container := _common_folder([_source(catalog, p) for p in table[catalog.path_column]]):
        settings.setdefault("container", container)
    out: dict[str, dict[str, Any]] = {}
    keys: dict[str, tuple[str, ...]] = {}
    for values, rows in table.groupby(groupby, sort=True, dropna=False):
        values = tuple(str(v) for v in (values if isinstance(values, tuple) else (values,)))
        columns = dict(zip(groupby, values, strict=True))
        dataset = f"{name}." + ".".join(_UNSAFE.sub("-", v) or "-" for v in values)
        if dataset in out:
            raise ConfigError(
                f"{where}: the groups {keys[dataset]} and {values} make the same dataset "
                f"name {dataset!r}: add a column to groupby"
            )
        keys[dataset] = values
        _one_variable(catalog, rows, values, where)
        out[dataset] = {
            **settings,
            "sources": [_source(catalog, p) for p in rows[catalog.path_column]],
            "group": _group_path(template, columns, rows, where),
            "attributes": {**settings.get("attributes", {}), **columns},
            "repository": repository,
        }
    return bundled(name, out, collection["files_per_job"])


def select(catalog: Catalog, query: dict[str, Any], where: str) -> pd.DataFrame:
    """The assets whose columns have the values ``query`` asks for (globs match by pattern;
    a column of lists matches where any of its values does), netCDF files only."""
    table = catalog.table
    _known(table, list(query), f"{where}.query")
    keep = pd.Series(True, index=table.index)
    for column, wanted in query.items():
        wanted = [_text(w) for w in (wanted if isinstance(wanted, list) else [wanted])]
        keep &= table[column].map(_matcher(wanted))
    chosen = table[keep]
    formats = chosen[catalog.format_column] if catalog.format_column else None
    if formats is not None:
        other = sorted({str(f).lower() for f in formats} - NETCDF_FORMATS)
        if other:
            raise ConfigError(
                f"{where}: the query selects assets of format {other} (this workflow reads "
                f"netCDF files): narrow the query, e.g. {catalog.format_column}: netcdf"
            )
    elif catalog.format and catalog.format.lower() not in NETCDF_FORMATS:
        raise ConfigError(
            f"{catalog.url}: its assets are {catalog.format!r}, not netCDF files: this "
            "workflow virtualizes netCDF (a Zarr catalog opens as it is)"
        )
    return chosen


def bundled(name: str, datasets: dict[str, dict], files_per_job: int) -> dict[str, dict]:
    """Small datasets many to a job: in name order, up to ``files_per_job`` files a job."""
    bundle, files = 0, 0
    for entry in datasets.values():
        count = len(entry["sources"])
        if count > files_per_job:
            continue  # a job of its own per step
        if files and files + count > files_per_job:
            bundle, files = bundle + 1, 0
        entry["bundle"] = f"{name}-{bundle:05d}"
        files += count
    return datasets


def _one_variable(catalog: Catalog, rows: pd.DataFrame, values: tuple, where: str) -> None:
    """A group whose files hold different variables would need them merged (intake-esm's
    union): refused, naming the variable column to add to groupby."""
    column = catalog.variable_column
    if not column or column not in rows:
        return
    found = sorted({str(v) for v in rows[column]})
    if len(found) > 1:
        raise ConfigError(
            f"{where}: the group {values} holds files of several variables {found[:5]}: add "
            f"{column!r} to groupby, one dataset per variable"
        )


def _group_path(template: str, columns: dict[str, str], rows: pd.DataFrame, where: str) -> str:
    fields = [(f, c, s) for _, f, s, c in string.Formatter().parse(template) if f is not None]
    for field, conversion, spec in fields:
        if (
            not field
            or not field.replace("_", "a").replace("-", "a").isalnum()
            or conversion
            or spec
        ):
            raise ConfigError(f"{where}.group: {template!r}: write {{column}}, not {{{field}}}")
    named = {field for field, _, _ in fields}
    try:
        path = template.format(**{**(_constant(rows) if named - set(columns) else {}), **columns})
    except KeyError as exc:
        raise ConfigError(f"{where}.group: {template!r} names {exc}, not a column") from None
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ConfigError(f"{where}.group: {template!r} gives the group path {path!r}")
    return "/".join(_UNSAFE.sub("-", p) for p in parts)


def _constant(rows: pd.DataFrame) -> dict[str, str]:
    """The columns with one value in the group (a group path may use them too)."""
    return {c: str(rows[c].iloc[0]) for c in rows if rows[c].astype(str).nunique() == 1}


def _source(catalog: Catalog, path: str) -> str:
    """An asset's path or URL; a relative path is taken from the catalog's folder."""
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{catalog.url}: an asset with no path ({catalog.path_column!r} empty)")
    if urlsplit(path).scheme in ("http", "https", "s3", "file") or path.startswith("/"):
        found = path
    else:
        found = _beside(catalog.url, path)
    # an asset is one file: a name with [ ] ? * is that name, never a pattern
    return glob.escape(found) if found.startswith("/") else found


def _common_folder(sources: list[str]) -> str | None:
    """One container for all local assets (a collection spans thousands of folders): their
    common folder, where every one of them is local."""
    if not sources or not all(s.startswith("/") or s.startswith("file://") for s in sources):
        return None
    paths = [local_path(normalize_url(s)) if s.startswith("file://") else s for s in sources]
    common = Path(os.path.commonpath([str(p) for p in paths]))
    return plain_prefix(common if common != Path(paths[0]) else common.parent)


def _text(value: Any) -> str:
    """A query value as the CSV writes it (YAML's true is the catalog's True)."""
    return str(value) if not isinstance(value, bool) else ("True" if value else "False")


def _matcher(wanted: list[str]) -> Callable[[Any], bool]:
    """Whether a cell (a value, or a tuple of them) matches a wanted value or pattern: a set
    lookup for the values (a query may list a thousand models), fnmatch for the patterns."""
    patterns = [w for w in wanted if any(c in w for c in "*?[")]
    exact = set(wanted) - set(patterns)

    def matches(cell: Any) -> bool:
        values = cell if isinstance(cell, tuple) else (cell,)
        return any(
            str(v) in exact or any(fnmatch.fnmatchcase(str(v), p) for p in patterns) for v in values
        )

    return matches


def _known(table: pd.DataFrame, columns: list[str], where: str) -> None:
    unknown = [c for c in columns if c not in table]
    if unknown:
        raise ConfigError(f"{where}: no column {unknown} in the catalog (it has {list(table)})")


def _as_tuple(text: Any) -> tuple:
    if isinstance(text, (list, tuple)):
        return tuple(text)
    try:
        value = ast.literal_eval(text) if text else ()
    except (ValueError, SyntaxError):
        return (text,)
    return tuple(value) if isinstance(value, (list, tuple, set)) else (value,)


def _beside(url: str, name: str) -> str:
    """``name`` (a path or URL) as seen from the catalog at ``url``."""
    if urlsplit(name).scheme in ("http", "https", "s3", "file") or name.startswith("/"):
        return normalize_url(name)
    if url.startswith("file://"):
        return normalize_url(str(local_path(url).parent / name))
    return urljoin(url, name)


def _json(url: str, access: Access) -> dict[str, Any]:
    try:
        return json.loads(_bytes(url, access))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{url}: not an ESM collection catalog (JSON): {exc}") from None


def _bytes(url: str, access: Access) -> bytes:
    if url.startswith("file://"):
        try:
            return local_path(url).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{url}: cannot read the catalog: {exc.strerror}") from None
    try:
        size = access.head(url)["size"]
        return access.get_ranges(url, [0], [size])[0]
    except AccessError as exc:
        raise ConfigError(f"cannot read the catalog: {exc}") from None
