"""The workflow's configuration: the schema's defaults, the demo's replacement, dataset access."""

from __future__ import annotations

import copy
import os
import re
import time
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
    with_datasets = [
        loaded
        for path in user_configfiles
        if "datasets" in (loaded := yaml.safe_load(Path(path).read_text()) or {})
    ]
    if not with_datasets:  # e.g. only a profile's cluster.yaml
        return config
    datasets: dict[str, Any] = {}
    for loaded in with_datasets:
        datasets.update(loaded["datasets"])
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


def mark_asked(datasets: list[str], now: bool) -> None:
    """The file whose time makes Snakemake list a dataset's sources again: touched by a run
    that runs jobs; one that does not (a report, a dry run) leaves it as old as it was."""
    for name in datasets:
        path = Path("results") / name / ".asked"
        path.parent.mkdir(parents=True, exist_ok=True)
        if now:  # new content too: Snakemake ignores a newer file whose checksum it knows
            path.write_text(f"sources asked at {time.time()}\n")
        elif not path.exists():
            path.write_text("sources not asked yet\n")
            os.utime(path, (0, 0))


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
