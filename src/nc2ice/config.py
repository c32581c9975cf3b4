"""The workflow's configuration: the schema's defaults, the demo's replacement, dataset access."""

from __future__ import annotations

import copy
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from nc2ice.errors import ConfigError

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def with_user_datasets(config: dict[str, Any], user_configfiles: list[str]) -> dict[str, Any]:
    """Let a user's ``--configfile`` replace the demo's datasets (and collections) instead of
    merging into them.

    Snakemake merges nested dictionaries, so without this a user's run would also build the
    demo dataset of the default config.
    """
    loaded = [yaml.safe_load(Path(path).read_text()) or {} for path in user_configfiles]
    with_datasets = [c for c in loaded if "datasets" in c or "collections" in c]
    if not with_datasets:  # e.g. only a profile's cluster.yaml
        return config
    config = copy.deepcopy(config)
    for key in ("datasets", "collections"):
        config[key] = {k: v for c in with_datasets for k, v in (c.get(key) or {}).items()}
    return config


def with_cluster_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """The profile's ``cluster_defaults`` under the user's ``cluster``: what the user sets wins.

    A profile's ``config:`` is applied like ``--config``, which beats every ``--configfile``;
    so a profile that set ``cluster`` itself would override the user's project and queues.
    """
    defaults = config.get("cluster_defaults") or {}
    if not defaults:
        return config
    config = copy.deepcopy(config)
    config["cluster"] = _merged(defaults, config.get("cluster") or {})
    return config


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = _merged(merged[key], value)
        merged[key] = value
    return merged


def load(
    config: dict[str, Any],
    user_configfiles: list[str],
    schema: str | Path,
    expand: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The config as the workflow uses it, in the main process and in every job alike: the
    user's datasets, the profile's cluster defaults under the user's settings, validated and
    its paths expanded.  Also the environment variables those paths used: the main process
    passes their values on to its jobs, so that a job expands them to the same paths.
    ``expand`` adds the datasets of the config's collections (``nc2ice.sources.collections``)."""
    config = with_cluster_defaults(with_user_datasets(config, user_configfiles))
    return config, _validated(config, schema, expand)


def validate(config: dict[str, Any], schema: str | Path) -> dict[str, Any]:
    """Validate against the schema, fill its defaults, expand the paths' ``$VAR`` and ``~``,
    and check what a schema cannot."""
    _validated(config, schema)
    return config


def _validated(
    config: dict[str, Any],
    schema: str | Path,
    expand: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> list[str]:
    """Check and complete ``config`` in place; the environment variables its paths use.
    The paths the user wrote are expanded once, before the collections add their datasets
    (whose sources are taken as their catalogs write them)."""
    _schema_check(config, schema)
    variables = expand_paths(config)
    if expand is not None and config.get("collections"):
        before = set(config["datasets"])
        config.update(expand(config))
        made = {n: d for n, d in config["datasets"].items() if n not in before}
        _check_made(config, schema, made)
    for name, dataset in config["datasets"].items():
        if not DATASET_NAME.match(name):
            raise ConfigError(f"datasets.{name}: a dataset name may hold letters, digits, _ . -")
        if dataset.get("parts"):
            dataset["parts"] = named_parts(name, dataset["parts"])
            check_parts(name, dataset)
        elif not dataset.get("sources") and not dataset.get("sources_file"):
            raise ConfigError(f"datasets.{name}: give 'sources' or 'sources_file' (or 'parts')")
    if not config["datasets"]:
        what = ": the collections' queries select no asset" if config.get("collections") else ""
        raise ConfigError(f"datasets: no dataset is configured{what}")
    check_groups(config)
    check_settings(config["cluster"], variables)
    return variables


def _schema_check(config: dict[str, Any], schema: str | Path) -> None:
    from snakemake.utils import validate as snakemake_validate

    try:
        snakemake_validate(config, str(schema), set_default=True)
    except Exception as exc:  # WorkflowError wrapping jsonschema's ValidationError
        raise ConfigError(_config_message(exc)) from None


# What the datasets a collection makes differ in: written by nc2ice from the catalog's rows.
_PER_DATASET = ("sources", "group", "attributes", "bundle")


def _check_made(config: dict[str, Any], schema: str | Path, made: dict[str, dict]) -> None:
    """The collections' datasets checked against the schema as fast as a handful, which
    10,000 of them checked one by one are not (seconds): those with the same settings (every
    dataset of one collection) are checked once in full and get that one's defaults, and
    each is checked in what it has of its own."""
    shared = {name: _shared_settings(dataset) for name, dataset in made.items()}
    first: dict[str, str] = {}  # shared settings -> the first dataset that has them
    for name, settings in shared.items():
        first.setdefault(settings, name)
    _schema_check({**config, "datasets": {n: made[n] for n in first.values()}}, schema)
    own = _own_fields_validator(schema)
    for name, dataset in made.items():
        model = made[first[shared[name]]]
        for key, value in model.items():
            if key not in _PER_DATASET and key not in dataset:
                dataset[key] = copy.deepcopy(value)
        error = next(own.iter_errors(dataset), None)
        if error is not None:
            where = ".".join(["datasets", name, *map(str, error.absolute_path)])
            raise ConfigError(f"config error at {where}: {error.message}")


def _shared_settings(dataset: dict[str, Any]) -> str:
    shared = {k: v for k, v in dataset.items() if k not in _PER_DATASET}
    return json.dumps(shared, sort_keys=True, default=str)


def _own_fields_validator(schema: str | Path) -> Any:
    """A validator of a dataset's own fields, by the schema's own rules for them."""
    from jsonschema.validators import validator_for

    full = yaml.safe_load(Path(schema).read_text())
    fields = full["properties"]["datasets"]["additionalProperties"]["properties"]
    own = {
        "$defs": full.get("$defs", {}),
        "type": "object",
        "properties": {k: fields[k] for k in _PER_DATASET},
    }
    return validator_for(full)(own)


# $$ (a dollar sign), ${NAME} or $NAME; a $ before anything else stays as it is.
_VARIABLE = re.compile(r"\$(?:(\$)|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def expand_paths(config: dict[str, Any]) -> list[str]:
    """Expand ``$VAR``, ``${VAR}`` and a leading ``~`` in every setting that names a file or
    a URL (the store, the sources, THREDDS catalogs, the sources file), in place; the names
    of the environment variables used.  The lines of a sources file are taken as written."""
    used: set[str] = set()
    store = config.get("store") or {}
    for key in ("root", "repository"):
        if isinstance(store.get(key), str):
            store[key] = expand_path(store[key], f"store.{key}", used)
    for name, collection in (config.get("collections") or {}).items():
        for key in ("catalog", "repository"):
            if isinstance(collection.get(key), str):
                where = f"collections.{name}.{key}"
                collection[key] = expand_path(collection[key], where, used)
    for name, dataset in config["datasets"].items():
        _expand_sources(dataset, f"datasets.{name}", used)
        parts = dataset.get("parts") or {}
        for key, settings in parts.items() if isinstance(parts, dict) else enumerate(parts):
            _expand_sources(settings, f"datasets.{name}.parts.{key}", used)
        if isinstance(dataset.get("repository"), str):
            dataset["repository"] = expand_path(
                dataset["repository"], f"datasets.{name}.repository", used
            )
    return sorted(used)


def _expand_sources(holder: dict[str, Any], where: str, used: set[str]) -> None:
    """A dataset's (or a part's) sources and sources file, expanded in place."""
    sources = holder.get("sources") or []
    for i, entry in enumerate(sources):
        key = f"{where}.sources.{i}"
        if isinstance(entry, str):
            sources[i] = expand_path(entry, key, used)
        elif isinstance(entry, dict) and isinstance(entry.get("thredds"), str):
            entry["thredds"] = expand_path(entry["thredds"], f"{key}.thredds", used)
    if isinstance(holder.get("sources_file"), str):
        holder["sources_file"] = expand_path(holder["sources_file"], f"{where}.sources_file", used)


def expand_path(value: str, key: str, used: set[str]) -> str:
    """``value`` with a leading ``~`` or ``~user`` and every ``$NAME`` or ``${NAME}`` replaced
    (``$$`` is a ``$``); a variable that is not set, or empty, is refused naming ``key``.
    The names of the variables used are added to ``used``."""
    home, rest = "", value
    if value.startswith("~"):
        head, slash, tail = value.partition("/")
        home = os.path.expanduser(head)
        if home.startswith("~"):
            raise ConfigError(f"{key}: {value}: there is no user {head[1:]!r} for {head}")
        if head == "~" and os.environ.get("HOME"):
            used.add("HOME")
        rest = slash + tail

    def variable(match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        name = match.group(2) if match.group(2) is not None else match.group(3)
        if not _NAME.match(name):
            raise ConfigError(
                f"{key}: {value}: '{match.group(0)}' is not a variable (write $$ for a $)"
            )
        found = os.environ.get(name)
        if not found:
            raise ConfigError(
                f"{key}: ${name} is not set (in {value}): set it, or write $$ for a $"
            )
        used.add(name)
        return found

    return home + _VARIABLE.sub(variable, rest)


def _config_message(exc: Exception) -> str:
    cause = exc.__cause__ or exc.__context__ or exc
    path = ".".join(str(p) for p in getattr(cause, "absolute_path", []))
    message = getattr(cause, "message", str(exc).splitlines()[0])
    return f"config error at {path or '<top level>'}: {message}"


# Snakemake invocations that do not run jobs: they must not make the sources be asked again.
_NOT_RUNNING = (
    "--report",
    "--dry-run",
    "--dryrun",
    "--lint",
    "--list",
    "--summary",
    "--detailed-summary",
    "--dag",
    "--rulegraph",
    "--filegraph",
    "--unlock",
    "--cleanup-metadata",
    "--delete-all-output",
    "--delete-temp-output",
    "--archive",
)


def runs_jobs(argv: list[str]) -> bool:
    """Whether this Snakemake invocation runs jobs (not a dry run, a report, a lint, ...)."""
    for arg in argv[1:]:
        if arg.startswith(_NOT_RUNNING):
            return False
        if arg.startswith("-") and not arg.startswith("--") and "n" in arg[1:]:
            return False  # -n, -np
    return True


def mark_asked(markers: list[str], now: bool) -> None:
    """The files whose time makes Snakemake list sources again (a dataset's, or a bundle's
    for all of its datasets): touched by a run that runs jobs; one that does not (a report,
    a dry run) leaves them as old as they were."""
    for marker in markers:
        path = Path(marker)
        path.parent.mkdir(parents=True, exist_ok=True)
        if now:  # new content too: Snakemake ignores a newer file whose checksum it knows
            path.write_text(f"sources asked at {time.time()}\n")
        elif not path.exists():
            path.write_text("sources not asked yet\n")
            os.utime(path, (0, 0))


# Settings that change how files are found, scanned or checked, or whether a commit is
# allowed, but not what the store holds: changing one never rewrites a dataset (what they
# change shows in the manifests' digests and the files' order, which the commit compares).
NOT_CONTENT = (
    "sources",
    "sources_file",
    "demo",
    "on_error",
    "on_vanished",
    "batch_size",
    "head_bytes",
    "inline_threshold",
    "sample_chunks",
    "recheck_files",
    "on_chunk_mismatch",
    "max_materialized_fraction",
    "bundle",
    "container",
)


# Of those, what the commit checks (a changed limit reruns the check, without a rewrite).
POLICY = ("on_chunk_mismatch", "max_materialized_fraction")


def store_settings(dataset: dict[str, Any]) -> dict[str, Any]:
    """The part of a dataset's config that decides the store's content (its commit)."""
    found = {k: v for k, v in dataset.items() if k not in NOT_CONTENT}
    if isinstance(found.get("parts"), dict):  # a part's sources are listed, not content
        found["parts"] = {n: store_settings(p) for n, p in found["parts"].items()}
    return found


def commit_settings(dataset: dict[str, Any]) -> dict[str, Any]:
    """The settings a commit job depends on: the content's, and the limits it checks."""
    return {**store_settings(dataset), **{k: dataset[k] for k in POLICY if k in dataset}}


def store_location(config: dict[str, Any], name: str) -> tuple[str, str]:
    """Where a dataset is stored: (repository URL, group in it).  By default each dataset
    has a repository of its own under ``store.root``; with ``store.repository`` (or a
    collection's repository) datasets share one, each in its ``group`` (default its name)."""
    from nc2ice.access import normalize_url

    dataset = (config.get("datasets") or {}).get(name) or {}
    shared = dataset.get("repository") or config["store"].get("repository")
    if shared:
        return normalize_url(str(shared)), dataset.get("group") or name
    root = str(config["store"]["root"]).rstrip("/")
    return normalize_url(f"{root}/{name}.icechunk"), dataset.get("group", "")


def check_groups(config: dict[str, Any]) -> None:
    """Refuse two datasets of one repository in the same group, or one inside the other's:
    each owns its group, and a commit refuses a group another dataset wrote."""
    groups: list[tuple[str, str, str]] = []
    for name in config["datasets"]:
        store, group = store_location(config, name)  # a repository of its own: group ""
        groups.append((store.rstrip("/"), f"{group}/" if group else "", name))
    # Sorted, a group and the groups inside it are neighbours: comparing them is enough.
    groups.sort()
    for (repo, outer, owner), (other_repo, inner, name) in zip(groups, groups[1:]):
        if repo == other_repo and inner.startswith(outer):
            raise ConfigError(
                f"datasets.{name}: its group {inner[:-1]!r} is {owner}'s group "
                f"{outer[:-1]!r} or lies inside it, in the same repository: give each dataset "
                "a group of its own"
            )


# The projects the docs and examples show: a run must not charge its jobs to them.
PLACEHOLDER_PROJECTS = ("xy12", "pawsey0123")


def check_settings(cluster: dict[str, Any], path_variables: list[str]) -> None:
    """Stop a run for a batch system before it submits anything: jobs must be charged to
    the user's project, and the variables in its paths must reach the jobs unchanged."""
    scheduler = cluster.get("scheduler")
    if not scheduler:
        return
    project = cluster.get("project")
    what = "NCI project (qsub -P)" if scheduler == "pbs" else "Slurm account"
    where = f"set it in your --configfile as cluster: {{project: <your {what}>}}"
    if not project:
        raise ConfigError(f"cluster.project: no project is set for the {scheduler} jobs: {where}")
    if project in PLACEHOLDER_PROJECTS:
        raise ConfigError(f"cluster.project: {project!r} is the examples' placeholder: {where}")
    for name in path_variables:
        if not passable(os.environ[name]):
            raise ConfigError(
                f"${name}: its value holds a quote, a backslash or a control character, "
                "which cannot be passed on to batch jobs: write the path itself in the config"
            )


def passable(value: str) -> bool:
    """Whether Snakemake passes ``value`` on to a batch job unchanged: it writes
    ``export NAME=<Python repr>`` into the job script, which a shell reads back exactly only
    for text in plain single quotes."""
    return "'" not in value and repr(value) == f"'{value}'"


def named_parts(name: str, parts: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    """A fused dataset's parts as a mapping, name -> settings, in order (the config may
    list them, each with a ``name``: the first part's coordinates are stored)."""
    if isinstance(parts, dict):
        return parts
    found: dict[str, Any] = {}
    for part in parts:
        settings = {k: v for k, v in part.items() if k != "name"}
        if found.setdefault(part["name"], settings) is not settings:
            raise ConfigError(f"datasets.{name}.parts: two parts are named {part['name']!r}")
    return found


def check_parts(name: str, dataset: dict[str, Any]) -> None:
    """A fused dataset's parts (``nc2ice.combine.fusion``): each with sources of its own, the
    dataset with none besides them, renames that name each variable once."""
    if dataset.get("sources") or dataset.get("sources_file"):
        raise ConfigError(
            f"datasets.{name}: give either 'parts' or 'sources'/'sources_file': with parts, "
            "each part lists its own sources"
        )
    for part, settings in dataset["parts"].items():
        where = f"datasets.{name}.parts.{part}"
        if not settings.get("sources") and not settings.get("sources_file"):
            raise ConfigError(f"{where}: give 'sources' or 'sources_file'")
        targets = list((settings.get("rename") or {}).values())
        if len(set(targets)) != len(targets):
            raise ConfigError(f"{where}.rename: two variables renamed to one name")
