"""The commit step: the batches' manifests combined into one dataset and committed.

It reads the scan indexes (which already hold each manifest's digest), combines the
manifests, commits the plan to Icechunk, and writes ``commit.json`` (what the store holds
and how it got there) and ``skipped.tsv`` (the files left out as unreadable, and why).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from nc2ice import combine as combine_mod
from nc2ice import commit as commit_mod
from nc2ice import config as config_mod
from nc2ice.access import Access, prefix_of
from nc2ice.chunks import read_region
from nc2ice.errors import CombineError
from nc2ice.faults import pause
from nc2ice.logs import Progress
from nc2ice.manifest import atomic_write_text, read_manifest
from nc2ice.scan import Scanned, read_index

log = logging.getLogger(__name__)


def aggregate(
    config: dict[str, Any], dataset: str, indexes: list[str], record_out: str, skipped_out: str
) -> dict[str, Any]:
    ds = config["datasets"][dataset]
    access = Access.from_config(config)
    rows: dict[str, Scanned] = {}
    where: dict[str, Path] = {}  # each file's manifest: in the folder named like its index
    for index in indexes:
        for row in read_index(index):
            rows[row.file_id], where[row.file_id] = row, Path(index).with_suffix("") / row.manifest
    scanned = [r for r in rows.values() if not r.skipped]
    skipped = [
        {"file_id": r.file_id, "url": r.url, "reason": r.skipped}
        for r in rows.values()
        if r.skipped
    ]
    _write_skipped(skipped_out, skipped, dataset)
    if not scanned:
        raise CombineError(
            f"{dataset}: no file to combine: all {len(skipped)} files were skipped as "
            f"unreadable; {skipped_out} lists them with the reasons"
        )
    progress = Progress(f"{dataset}: manifests read", len(scanned))
    manifests = []
    for row in scanned:
        manifests.append((row.file_id, read_manifest(where[row.file_id])))
        progress.advance()
    log.info("%s: combining %d manifests (%d skipped files)", dataset, len(manifests), len(skipped))
    plan = combine_mod.combine(
        manifests,
        concat_dim=ds["concat_dim"],
        variables=ds["variables"],
        drop_variables=ds["drop_variables"],
        on_chunk_mismatch=ds["on_chunk_mismatch"],
        max_materialized_fraction=ds["max_materialized_fraction"],
        concat_order=ds["concat_order"],
        reader=lambda var: read_region(var, tuple(slice(0, n) for n in var.shape), access),
    )
    report = plan.report()
    store_url, group = config_mod.store_location(config, dataset)
    settings = config_mod.store_settings(ds)
    digests = {f: rows[f].sha256 for f in plan.files}
    inputs = {"manifests": digests, "dataset": settings, "store": store_url, "group": group}
    metadata = {
        "dataset": dataset,
        "input_digest": commit_mod.input_digest(inputs),
        "order": plan.files,
        "sources": {f: {"url": rows[f].url, "manifest_sha256": digests[f]} for f in plan.files},
        "config": settings,
        "versions": commit_mod.package_versions(),
        "report": {k: v for k, v in report.items() if k != "per_file"},
        "attributes": commit_mod.attribute_types(plan),
    }
    urls = {rows[f].url: rows[f] for f in plan.files}
    outcome = commit_mod.commit_plan(
        plan,
        dataset=dataset,
        store_url=store_url,
        group=group,
        access=access,
        prefixes=sorted({prefix_of(url) for url in urls}),
        metadata=metadata,
        checksums={u: c for u, row in urls.items() if (c := checksum(row)) is not None},
    )
    pause("commit:committed")
    _log_report(dataset, report)
    record = {
        "dataset": dataset,
        "store": store_url,
        "group": group,
        "snapshot": outcome.snapshot,
        "new_commit": outcome.new,
        "action": outcome.change.action,
        "change": outcome.change.record(),
        "tag": outcome.tag,
        "concat_dim": ds["concat_dim"],
        "groups": sorted(plan.group_attrs),
        "files": _file_extents(plan, rows),
        "skipped": skipped,
        "report": report,
    }
    write_json(record_out, record)
    return record


def checksum(row: Scanned) -> str | datetime | None:
    """What Icechunk checks before serving a chunk of this file: its ETag where the server
    gives a strong one, else its Last-Modified time (plus a second for servers that round
    it down); a file that changed after the commit is then refused, never misread."""
    if row.etag and not row.etag.startswith("W/"):
        return row.etag
    return commit_mod.checksum_time(row.last_modified)


def write_json(path: str | Path, doc: dict[str, Any]) -> None:
    atomic_write_text(Path(path), json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")


def _write_skipped(path: str, skipped: list[dict[str, str]], dataset: str) -> None:
    rows = "".join(f"{s['file_id']}\t{s['url']}\t{s['reason']}\n" for s in skipped)
    atomic_write_text(path, "file_id\turl\treason\n" + rows)
    if skipped:
        log.warning("%s: %d file(s) skipped, listed in %s", dataset, len(skipped), path)


def _file_extents(plan: combine_mod.Plan, rows: dict[str, Scanned]) -> list[dict[str, Any]]:
    """Where each file's piece lies along the concatenation dimension of the store."""
    lengths = dict.fromkeys(plan.files, 0)
    concatenated = [a for a in plan.arrays.values() if a.axis is not None]
    if concatenated:
        lengths = {p.file_id: p.var.shape[0] for p in concatenated[0].parts}
    extents, start = [], 0
    for file_id in plan.files:
        row = rows[file_id]
        extent = {"file_id": file_id, "url": row.url, "start": start, "length": lengths[file_id]}
        extent["version"] = {"size": row.size, "etag": row.etag, "last_modified": row.last_modified}
        extents.append(extent)
        start += lengths[file_id]
    return extents


def _log_report(dataset: str, report: dict[str, Any]) -> None:
    log.info(
        "%s: %d files combined into %d arrays (%d virtual), %d chunk references",
        dataset,
        report["files"],
        report["arrays"],
        report["virtual_arrays"],
        report["chunk_references"],
    )
    log.info(
        "%s: %d files referenced as they are, %d split into smaller references, "
        "%d partly copied (%d bytes copied)",
        dataset,
        len(report["files_as_is"]),
        len(report["files_split"]),
        len(report["files_copied"]),
        report["copied_bytes"],
    )
    for path, grid in report["grids"].items():
        log.info("%s: %r stored on the chunk grid %s", dataset, path, tuple(grid))
    for file_id, why in report["copied_why"].items():
        copied = report["per_file"][file_id]["copied_bytes"]
        log.info("%s: %s: %d bytes copied because %s", dataset, file_id, copied, "; ".join(why))
    for name, why in report["dropped_variables"].items():
        log.warning("%s: variable %r left out: %s", dataset, name, why)
    for name, why in report["copied_variables"].items():
        log.info("%s: variable %r copied into the store: %s", dataset, name, why)
    for name, diff in report["dtype_differences"].items():
        log.warning("%s: %r: %s", dataset, name, diff["why"])
    for note in report["notes"]:
        log.info("%s: %s", dataset, note)
