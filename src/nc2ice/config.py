"""The workflow's configuration: the schema's defaults, the demo's replacement, dataset access."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from nc2ice.errors import ConfigError

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def with_user_datasets(config: dict[str, Any], user_configfiles: list[str]) -> dict[str, Any]:
    """Let a user's ``--configfile`` replace the demo's datasets instead of merging into them.

    Snakemake merges nested dictionaries, so without this a user's run would also build the
    demo dataset of the default config.
    """
    if not user_configfiles:
        return config
    datasets: dict[str, Any] = {}
    for path in user_configfiles:
        datasets.update((yaml.safe_load(Path(path).read_text()) or {}).get("datasets", {}))
    config = copy.deepcopy(config)
    config["datasets"] = datasets
    return config


def validate(config: dict[str, Any], schema: str | Path) -> dict[str, Any]:
    """Validate against the schema, fill its defaults, and check what a schema cannot."""
    from snakemake.utils import validate as snakemake_validate

    try:
        snakemake_validate(config, str(schema), set_default=True)
    except Exception as exc:  # WorkflowError wrapping jsonschema's ValidationError
        raise ConfigError(_config_message(exc)) from None
    for name, dataset in config["datasets"].items():
        if not DATASET_NAME.match(name):
            raise ConfigError(f"datasets.{name}: a dataset name may hold letters, digits, _ . -")
        if not dataset.get("sources") and not dataset.get("sources_file"):
            raise ConfigError(f"datasets.{name}: give 'sources' or 'sources_file'")
    if not config["datasets"]:
        raise ConfigError("datasets: no dataset is configured")
    return config


def _config_message(exc: Exception) -> str:
    cause = exc.__cause__ or exc.__context__ or exc
    path = ".".join(str(p) for p in getattr(cause, "absolute_path", []))
    message = getattr(cause, "message", str(exc).splitlines()[0])
    return f"config error at {path or '<top level>'}: {message}"


# Settings that change how a run is checked, not what the store holds.
VALIDATION_ONLY = ("sample_chunks",)


def store_settings(dataset: dict[str, Any]) -> dict[str, Any]:
    """The part of a dataset's config that decides the store's content (its commit)."""
    return {k: v for k, v in dataset.items() if k not in VALIDATION_ONLY}


def store_location(config: dict[str, Any], name: str) -> tuple[str, str]:
    """Where a dataset is stored: (repository URL, group in it).  By default each dataset
    has a repository of its own under ``store.root``; with ``store.repository`` all
    datasets share one, each in the group named after it."""
    from nc2ice.access import normalize_url

    shared = config["store"].get("repository")
    if shared:
        return normalize_url(str(shared)), name
    root = str(config["store"]["root"]).rstrip("/")
    return normalize_url(f"{root}/{name}.icechunk"), ""
