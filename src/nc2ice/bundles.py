"""Small datasets many to a job: a bundle takes each of its datasets through every step in
turn (list, scan, commit, validate, publish) in one process.

A collection of thousands of small datasets would otherwise cost thousands of jobs per step
and a Snakemake re-plan per listing.  The bundle keeps the per-dataset outputs where the
step-by-step rules write them (``results/<dataset>/``: sources, manifests, ``commit.json``,
the validation's parts and verdict, ``published.json``), and, as Snakemake would, skips a
step whose outputs are newer than its inputs, so a rerun picks up where the last one
stopped.  A dataset that fails does not stop the others: the job fails at the end, naming
every dataset that did and why (the run's summary lists them first).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nc2ice.atomic import load_json, write_json
from nc2ice.config import commit_settings
from nc2ice.errors import Nc2IceError

log = logging.getLogger(__name__)


Listed = tuple[str, str, dict[str, Any], str]  # store, group path, index entry, dataset


class BundleError(Nc2IceError):
    """Some datasets of a bundle failed (the others are published)."""


def members(config: dict[str, Any]) -> dict[str, list[str]]:
    """Each bundle's datasets, in name order."""
    found: dict[str, list[str]] = {}
    for name, entry in config["datasets"].items():
        if entry.get("bundle"):
            found.setdefault(entry["bundle"], []).append(name)
    return {b: sorted(names) for b, names in sorted(found.items())}


def settings_digest(config: dict[str, Any], datasets: list[str]) -> str:
    """One digest of the bundle's datasets' settings: a change reruns the bundle's job."""
    entries = {d: config["datasets"][d] for d in datasets}
    text = json.dumps([entries, config["store"]], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Paths:
    """Where the step-by-step rules keep a dataset's outputs (the bundle writes them alike)."""

    dataset: str

    def __post_init__(self) -> None:
        self.root = Path("results") / self.dataset

    @property
    def sources(self) -> Path:
        return self.root / "sources.tsv"

    @property
    def batches(self) -> Path:
        return self.root / "batches"

    def index(self, batch: str) -> Path:
        return self.root / "manifests" / f"{batch}.tsv"

    @property
    def commit(self) -> Path:
        return self.root / "commit.json"

    @property
    def skipped(self) -> Path:
        return self.root / "skipped.tsv"

    def part(self, n: int) -> tuple[Path, Path]:
        return self.root / f"validation/part{n}.json", self.root / f"validation/part{n}.npz"

    @property
    def verdict(self) -> Path:
        return self.root / "validation.json"

    @property
    def published(self) -> Path:
        return self.root / "published.json"

    @property
    def indexed(self) -> Path:
        """Written once the repository's index names the published snapshot."""
        return self.root / ".indexed"

    @property
    def stamp(self) -> Path:
        """The settings and scan indexes of the last commit (Snakemake's params and inputs)."""
        return self.root / ".bundled.json"


def run_bundle(
    config: dict[str, Any], bundle: str, out: str, connections: int = 1
) -> dict[str, Any]:
    """Every dataset of ``bundle`` through every step; ``out`` lists what each one did."""
    datasets = members(config)[bundle]
    rows, failed, published = [], {}, []
    for dataset in datasets:
        try:
            if done := run_dataset(config, dataset, connections):
                published.append(done)
        except Nc2IceError as exc:
            log.error("%s", exc)
            failed[dataset] = str(exc)
        rows.append({"dataset": dataset, "error": failed.get(dataset)})
    _index(config, published)
    result = {"bundle": bundle, "datasets": rows, "failed": sorted(failed)}
    write_json(Path(out).with_suffix(".last.json"), result)  # kept when the job fails
    if failed:
        names = ", ".join(list(failed)[:10]) + (" ..." if len(failed) > 10 else "")
        raise BundleError(
            f"{bundle}: {len(failed)} of {len(datasets)} datasets failed ({names}); the others "
            f"are published. Each one's error is above and in {Path(out).with_suffix('.last.json')}"
        )
    write_json(out, result)
    log.info("%s: %d datasets, all published", bundle, len(datasets))
    return result


def _index(config: dict[str, Any], published: list[Listed]) -> None:
    """The datasets published by this job listed in their repositories' indexes, one commit
    per repository (not one per dataset: each rewrites the whole index)."""
    from nc2ice.store.dataset import update_index

    stores: dict[str, dict[str, dict]] = {}
    for store, group, entry, _ in published:
        if group:  # a dataset alone in its repository has no index
            stores.setdefault(store, {})[group] = entry
    for store, entries in stores.items():
        update_index(config, store, entries)
    for *_, dataset in published:
        Paths(dataset).indexed.write_text("indexed\n")


def run_dataset(config: dict[str, Any], dataset: str, connections: int = 1) -> Listed | None:
    """One dataset through every step, each skipped where its outputs are up to date; its
    index entry if it was published now."""
    from nc2ice import steps
    from nc2ice.sources.batches import names
    from nc2ice.sources.listing import list_dataset
    from nc2ice.store.dataset import commit_dataset, publish_dataset

    paths = Paths(dataset)
    ds = config["datasets"][dataset]
    before = _stamped(paths) or {}
    list_dataset(config, dataset, str(paths.sources), paths.batches)
    # what a scan reads and keeps: a change scans again (manifests of another setting
    # are not reused), as Snakemake reruns a scan job whose params changed
    scanning = {k: ds.get(k) for k in ("inline_threshold", "head_bytes", "on_error")}
    indexes = []
    for batch in names(paths.batches):
        listed, index = paths.batches / f"{batch}.tsv", paths.index(batch)
        if _stale([index], [listed]) or before.get("scan") != scanning:
            steps.scan(config, dataset, str(listed), str(index), connections)
        indexes.append(str(index))
    stamp = {
        "settings": commit_settings(ds),
        "store": config["store"],  # as the commit rule's params: another endpoint recommits
        "indexes": indexes,
        "scan": scanning,
    }
    stamp = json.loads(json.dumps(stamp, default=str))
    if _stale([paths.commit], [Path(i) for i in indexes]) or before != stamp:
        commit_dataset(
            config, dataset, indexes, str(paths.commit), str(paths.skipped), str(paths.sources)
        )
        write_json(paths.stamp, stamp)
    parts = []
    for n in range(len(load_json(paths.commit)["validation_plan"]["parts"])):
        verdict, quicklook = paths.part(n)
        if _stale([verdict, quicklook], [paths.commit]):
            verdict.parent.mkdir(exist_ok=True)
            steps.validate_step(
                config, dataset, str(paths.commit), n, str(verdict), str(quicklook), connections
            )
        parts.append(str(verdict))
    if _stale([paths.verdict], [paths.commit, *map(Path, parts)]):
        steps.verdict_step(config, dataset, str(paths.commit), parts, str(paths.verdict))
    if not _stale([paths.published], [paths.commit, paths.verdict]):
        # published, but its job stopped before the index named it: index it now
        if _stale([paths.indexed], [paths.published]):
            return _listed(config, load_json(paths.commit), load_json(paths.published))
        return None
    published = publish_dataset(
        config,
        dataset,
        str(paths.commit),
        str(paths.verdict),
        indexes,
        str(paths.sources),
        str(paths.published),
        index=False,
    )
    return _listed(config, load_json(paths.commit), published)


def _listed(config: dict[str, Any], record: dict[str, Any], published: dict[str, Any]) -> Listed:
    """What the repository's index will say of a dataset: read now, while the snapshot just
    published is in memory (read at the job's end, a hundred of them would be read again)."""
    from nc2ice.store.dataset import listed

    try:
        group, entry = listed(config, record, published) if record["group"] else ("", {})
    except Exception as exc:  # published all the same: the next run lists it
        raise BundleError(
            f"{record['dataset']}: published (snapshot {published['snapshot']}), but its "
            f"entry in the repository's index could not be read ({exc}); the next run lists it"
        ) from exc
    return record["store"], group, entry, record["dataset"]


def _stale(outputs: list[Path], inputs: list[Path]) -> bool:
    """Whether a step must run: an output is missing or older than an input."""
    if not all(o.exists() for o in outputs):
        return True
    oldest = min(o.stat().st_mtime for o in outputs)
    return any(i.stat().st_mtime > oldest for i in inputs if i.exists())


def _stamped(paths: Paths) -> dict[str, Any] | None:
    try:
        return load_json(paths.stamp)
    except (OSError, ValueError):
        return None
