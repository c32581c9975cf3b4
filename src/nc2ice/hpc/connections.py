"""How many connections each job may open to each server.

`http.max_connections` caps the connections all jobs together open to one server: each web
host and each S3 endpoint is a Snakemake resource of its own (``net_<server>``), limited to
that number, so a dataset on S3 never waits for a slow THREDDS server.  A job holds its
share of every server its dataset reads from and opens no more than that share at once.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from nc2ice.access import Access
from nc2ice.sources.files import patterns


def resource_name(server: str) -> str:
    return "net_" + re.sub(r"[^A-Za-z0-9]+", "_", server).strip("_").lower()


def dataset_servers(dataset: dict[str, Any], access: Access) -> set[str]:
    """The servers a dataset's sources live on, from the config alone (no request)."""
    entries = patterns(dataset, missing_ok=True)
    urls = [e["thredds"] if isinstance(e, dict) else e for e in entries]
    return {server for url in urls if (server := access.server(url)) is not None}


class Budget:
    """The connection limits of a run, and each job's share of them."""

    def __init__(self, config: dict[str, Any]):
        access = Access.from_config(config)
        http = config["http"]
        self.limit = int(http["max_connections"])
        self.per_job = int(http.get("connections_per_job") or self.limit)
        self.servers = {
            name: {resource_name(s) for s in dataset_servers(ds, access)}
            for name, ds in config["datasets"].items()
        }

    def limits(self) -> dict[str, int]:
        """The global resources: every server's connection cap."""
        return {r: self.limit for names in self.servers.values() for r in names}

    def share(self, dataset: str, resource: str, whole: bool = False) -> int:
        """Connections a job of ``dataset`` holds on ``resource`` (0 if it does not read it)."""
        if resource not in self.servers.get(dataset, set()):
            return 0
        return self.limit if whole else min(self.per_job, self.limit)

    def connections(self, dataset: str) -> int:
        """How many connections a job of the dataset may open at once to each server."""
        return min(self.per_job, self.limit)


def store_resource(config: dict[str, Any], dataset: str) -> str | None:
    """The resource a job holds while it writes the dataset's store, where the store is a
    local folder (Icechunk's local storage takes one writer at a time): datasets sharing a
    repository then take turns within a run instead of waiting on its lock."""
    from nc2ice.config import store_location

    store, _ = store_location(config, dataset)
    if not store.startswith("file://"):
        return None
    return "store_" + hashlib.sha1(store.encode()).hexdigest()[:10]
