"""One dataset committed and published.

The commit reads the scan indexes (which already hold each manifest's digest), combines the
manifests in the order the listing gave, writes the plan as a snapshot on a branch of its own
(see ``nc2ice.store.snapshot``), and writes ``commit.json`` (what the snapshot holds and how it
got there) and ``skipped.tsv`` (the files left out as unreadable, and why).  Publishing reads
``validation.json``: only a snapshot that passed moves ``main``; ``published.json`` says where
``main`` is now and its tag.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nc2ice import config as config_mod
from nc2ice.access import Access, prefix_of
from nc2ice.atomic import atomic_write_text, load_json, write_json
from nc2ice.combine.fusion import combine_parts
from nc2ice.combine.plan import Plan, combine
from nc2ice.errors import CombineError, CommitError, PublishError, out_of_space
from nc2ice.faults import pause
from nc2ice.logs import Progress
from nc2ice.model.chunks import read_region
from nc2ice.model.index import Scanned, read_index, scanned_versions
from nc2ice.model.manifest import read_manifest
from nc2ice.sources.files import file_parts, read_table
from nc2ice.store import publish as publish_mod
from nc2ice.store import repository, trust
from nc2ice.store import snapshot as snapshots
from nc2ice.store.open import read_with

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A dataset's plan and everything its commit records."""

    dataset: str
    plan: Plan
    rows: dict[str, Scanned]
    skipped: list[dict[str, str]]
    metadata: dict[str, Any]
    store_url: str
    group: str
    access: Access
    container: str | None = None

    def _container(self, url: str) -> str:
        """The container covering ``url``: the config's (a collection's common folder), or
        one per host, bucket or folder."""
        if self.container and url.startswith(self.container):
            return self.container
        return prefix_of(url)

    def commit(self, base: str | None = None, locked: bool = False) -> snapshots.Outcome:
        """Write the plan as a snapshot on a branch of its own (``main`` does not move);
        ``locked``: the caller holds the store's lock already (publishing writes again)."""
        urls = {self.rows[f].url: self.rows[f] for f in self.plan.files}
        prefixes = sorted({self._container(url) for url in urls})
        options = {
            "dataset": self.dataset,
            "group": self.group,
            "access": self.access,
            "metadata": self.metadata,
            "checksums": {u: c for u, row in urls.items() if (c := checksum(row)) is not None},
            "base": base,
        }
        with room_in(self.store_url):
            if not locked:
                return snapshots.commit_plan(
                    self.plan, store_url=self.store_url, prefixes=prefixes, **options
                )
            repo = repository.open_for_writing(
                self.store_url, self.access, prefixes, self.plan, locked=True
            )
            return snapshots.commit_to(repo, self.plan, store_url=self.store_url, **options)


def prepare(
    config: dict[str, Any], dataset: str, indexes: list[str], sources_tsv: str | None
) -> Prepared:
    """Read the scan indexes and manifests and combine them into a plan."""
    ds = config["datasets"][dataset]
    access = Access.from_config(config)
    rows, where = _scanned(indexes, sources_tsv)
    scanned = [r for r in rows.values() if not r.skipped]
    # copies read the version each file's scan recorded, or fail: "changed while it was read"
    access = access.pinned(scanned_versions(scanned))
    skipped = [
        {"file_id": r.file_id, "url": r.url, "reason": r.skipped}
        for r in rows.values()
        if r.skipped
    ]
    if not scanned:
        raise CombineError(
            f"{dataset}: no file to combine: all {len(skipped)} files were skipped as "
            f"unreadable; skipped.tsv lists them with the reasons"
        )
    progress = Progress(f"{dataset}: manifests read", len(scanned))
    manifests = []
    for row in scanned:
        manifests.append((row.file_id, read_manifest(where[row.file_id])))
        progress.advance()
    log.info("%s: combining %d manifests (%d skipped files)", dataset, len(manifests), len(skipped))
    reader = lambda var: read_region(var, tuple(slice(0, n) for n in var.shape), access)  # noqa: E731
    if ds.get("parts"):
        plan = _fused(ds, manifests, sources_tsv, reader)
    else:
        plan = combine(
            manifests,
            concat_dim=ds["concat_dim"],
            variables=ds["variables"],
            drop_variables=ds["drop_variables"],
            on_chunk_mismatch=ds["on_chunk_mismatch"],
            max_materialized_fraction=ds["max_materialized_fraction"],
            concat_order=ds["concat_order"],
            convert_units=ds.get("convert_units", False),
            accept_differences=ds.get("accept_differences", []),
            reader=reader,
        )
    added = add_attributes(plan, ds.get("attributes") or {}, dataset)
    store_url, group = config_mod.store_location(config, dataset)
    settings = config_mod.store_settings(ds)
    digests = {f: rows[f].sha256 for f in plan.files}
    inputs = {"manifests": digests, "dataset": settings, "store": store_url, "group": group}
    metadata = {
        "dataset": dataset,
        "input_digest": snapshots.input_digest(inputs),
        "order": plan.files,
        "sources": {f: {"url": rows[f].url, "manifest_sha256": digests[f]} for f in plan.files},
        "config": settings,
        "versions": snapshots.package_versions(),
        "report": {k: v for k, v in plan.report().items() if k != "per_file"},
        "attributes": snapshots.attribute_types(plan),
        "extents": {e["file_id"]: [e["start"], e["length"]] for e in _file_extents(plan, rows)},
        "added_attributes": added,
    }
    container = ds.get("container")
    return Prepared(dataset, plan, rows, skipped, metadata, store_url, group, access, container)


def add_attributes(plan: Plan, attributes: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The config's ``attributes`` (a collection's: its columns' values) on the dataset's
    root group, where the files do not have them: a file's own value is what the files say,
    so it is kept, and the difference logged.  Returns those added."""
    root = plan.group_attrs.setdefault("", {})
    added = {}
    for key, value in attributes.items():
        if key not in root:
            root[key] = added[key] = value
        elif root[key] != value:
            log.info(
                "%s: attribute %r is %r in the files, %r in the config: the files' kept",
                dataset,
                key,
                root[key],
                value,
            )
    return added


def _fused(ds: dict[str, Any], manifests: list, sources_tsv: str | None, reader) -> Plan:
    """Each part's files combined along its own dimension, then the parts merged by
    variable (``nc2ice.combine.fusion``); which part a file belongs to, the listing says."""
    if not sources_tsv or not Path(sources_tsv).exists():
        raise CombineError("a dataset of parts needs the listing's sources.tsv to commit")
    part_of = file_parts(ds, read_table(sources_tsv))
    by_part: dict[str, list] = {name: [] for name in ds["parts"]}
    for file_id, manifest in manifests:
        by_part[part_of[file_id]].append((file_id, manifest))
    return combine_parts(
        by_part,
        ds,
        on_chunk_mismatch=ds["on_chunk_mismatch"],
        max_materialized_fraction=ds["max_materialized_fraction"],
        reader=reader,
    )


def _scanned(
    indexes: list[str], sources_tsv: str | None
) -> tuple[dict[str, Scanned], dict[str, Path]]:
    """Every file's index row and manifest path, in the order the listing gave the files
    (batches hold new files in the order they arrived, not the order listed)."""
    rows: dict[str, Scanned] = {}
    where: dict[str, Path] = {}  # each file's manifest: in the folder named like its index
    for index in indexes:
        for row in read_index(index):
            rows[row.file_id], where[row.file_id] = row, Path(index).with_suffix("") / row.manifest
    if sources_tsv and Path(sources_tsv).exists():
        listed = {s.file_id: n for n, s in enumerate(read_table(sources_tsv))}
        order = sorted(rows, key=lambda f: listed.get(f, len(listed)))
        rows = {f: rows[f] for f in order}
    return rows, where


def commit_dataset(
    config: dict[str, Any],
    dataset: str,
    indexes: list[str],
    record_out: str,
    skipped_out: str,
    sources_tsv: str | None = None,
) -> dict[str, Any]:
    """The commit step: combine, write a snapshot to be validated, record what it holds."""
    try:
        prepared = prepare(config, dataset, indexes, sources_tsv)
    except CombineError:
        rows, _ = _scanned(indexes, sources_tsv)
        _write_skipped(skipped_out, [_skip(r) for r in rows.values() if r.skipped], dataset)
        raise
    _write_skipped(skipped_out, prepared.skipped, dataset)
    outcome = prepared.commit()
    pause("commit:committed")
    report = prepared.plan.report()
    _log_report(dataset, report)
    record = {
        "dataset": dataset,
        "store": prepared.store_url,
        "group": prepared.group,
        "snapshot": outcome.snapshot,
        "base": outcome.base,
        "branch": outcome.branch,
        "new_commit": outcome.new,
        "action": outcome.change.action,
        "change": outcome.change.record(),
        "tag": outcome.tag,
        "concat_dim": _concat_dim(prepared.plan, config["datasets"][dataset]),
        "groups": sorted(prepared.plan.group_attrs),
        "added_attributes": prepared.metadata["added_attributes"],
        "files": _file_extents(prepared.plan, prepared.rows),
        "skipped": prepared.skipped,
        "report": report,
        "read_with": _read_with(prepared),
    }
    if prepared.plan.fusion:  # which part each file is of, its names and dimension
        record["fusion"] = prepared.plan.fusion
    ds = config["datasets"][dataset]
    record["validation_plan"] = trust.plan(
        prepared.plan.files,
        outcome.trusted,
        outcome.trusted_from,
        seed=outcome.snapshot,
        recheck=ds.get("recheck_files", 10),
        parts=trust.part_count(len(indexes)),
    )
    _log_plan(dataset, record["validation_plan"])
    write_json(record_out, record)
    return record


def _read_with(prepared: Prepared) -> str:
    """The plain Icechunk + xarray code that opens the dataset once published, anonymously
    (its comments say what changes for a reader with keys)."""
    containers = {prefix_of(prepared.rows[f].url) for f in prepared.plan.files}
    anonymous = dataclasses.replace(prepared.access.store_s3, anonymous=True)
    tree = any(prepared.plan.group_attrs.keys() - {""})
    return read_with(prepared.store_url, prepared.group, containers, s3=anonymous, tree=tree)


def _log_plan(dataset: str, plan: dict[str, Any]) -> None:
    trusted = plan["trusted"]
    log.info(
        "%s: validation will compare %d file(s) that changed and recheck %d of the %d kept "
        "as they were (the rest vouched for by snapshot %s), in %d job(s)",
        dataset,
        len(plan["compare"]),
        len(plan["recheck"]),
        len(plan["recheck"]) + len(trusted["files"]),
        trusted["snapshot"],
        len(plan["parts"]),
    )


def _skip(row: Scanned) -> dict[str, str]:
    return {"file_id": row.file_id, "url": row.url, "reason": row.skipped}


def publish_dataset(
    config: dict[str, Any],
    dataset: str,
    commit_json: str,
    validation_json: str,
    indexes: list[str],
    sources_tsv: str | None,
    out: str,
    index: bool = True,
) -> dict[str, Any]:
    """The publish step: ``main`` moves to the validated snapshot, or stays where it is;
    then the repository's index lists it (``index``: a bundle lists its datasets at once)."""
    record, verdict = load_json(commit_json), load_json(validation_json)
    store, base, branch = record["store"], record["base"], record["branch"]
    if not verdict.get("passed"):
        raise PublishError(_refusal(config, dataset, record, validation_json))
    published = {
        "dataset": dataset,
        "store": store,
        "group": record["group"],
        "snapshot": record["snapshot"],
        "validated_snapshot": record["snapshot"],
        "tag": None,
        "action": record["action"],
        "replayed_onto": [],
        "read_with": record.get("read_with"),
    }
    if record["new_commit"]:
        access = Access.from_config(config)
        outcome = snapshots.Outcome(
            record["snapshot"], True, _change(record), base, branch, record["tag"]
        )
        with room_in(store), repository.store_lock(store):
            repo = repository.kept_repository(store, access)

            def rewrite(tip: str) -> snapshots.Outcome:
                prepared = prepare(config, dataset, indexes, sources_tsv)
                if prepared.metadata["input_digest"] != _digest(repo, record["snapshot"]):
                    raise CommitError(f"{dataset}: the inputs changed since the commit: run again")
                # the same plan, the same change: the validated snapshot vouches for it
                prepared.metadata["validated_as"] = record["snapshot"]
                return prepared.commit(base=tip, locked=True)

            done = publish_mod.publish(repo, dataset, record["group"], outcome, rewrite)
        published.update(snapshot=done.snapshot, tag=done.tag, replayed_onto=done.replayed)
        log.info(
            "%s: published: main is now at snapshot %s, tagged %s", dataset, done.snapshot, done.tag
        )
    else:
        log.info("%s: nothing new to publish: main holds snapshot %s", dataset, record["snapshot"])
    if record["group"] and index:  # a repository shared by datasets: its index names it
        update_index(config, record["store"], dict([listed(config, record, published)]))
    write_json(out, published)
    return published


def listed(
    config: dict[str, Any], record: dict[str, Any], published: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The index's entry for a dataset just published (its commit and published records),
    by group path: read from the published snapshot, best while this process holds it."""
    from nc2ice.store.contents import index_entry

    repo = repository.kept_repository(record["store"], Access.from_config(config))
    entry = index_entry(repo, {**published, "files": len(record["files"])}, record["concat_dim"])
    return record["group"], entry


def update_index(config: dict[str, Any], store: str, entries: dict[str, dict[str, Any]]) -> None:
    """The repository's index lists these entries (group path -> ``listed``'s entry) as
    ``main`` has them now: one commit for all of them."""
    from nc2ice.store.contents import write_index

    with room_in(store), repository.store_lock(store):
        written = write_index(
            repository.kept_repository(store, Access.from_config(config)),
            entries,
        )
    if written:
        log.info(
            "%s: %d dataset(s) listed in its index (snapshot %s)", store, len(entries), written
        )


@contextlib.contextmanager
def room_in(store_url: str) -> Iterator[None]:
    """A store that runs out of room says so in one line naming it (Icechunk's error does
    not name the store)."""
    try:
        yield
    except Exception as exc:
        full = out_of_space(exc)
        if full is None:
            raise
        raise CommitError(f"{store_url}: {full}") from None


def _refusal(config: dict[str, Any], dataset: str, record: dict[str, Any], verdict: str) -> str:
    """What a failed validation leaves: main where it was, the snapshot on its branch (and
    marked, so that no later run offers it again)."""
    failed = Path(verdict).with_suffix(".failed.json")
    store, snapshot = record["store"], record["snapshot"]
    if not record["new_commit"]:
        return (
            f"{dataset}: validation FAILED for snapshot {snapshot}, which main holds already "
            f"(nothing new was committed); {failed} lists the mismatches. A source that "
            "changed or could not be read is rescanned, or read again, by the next run"
        )
    with contextlib.suppress(Exception):  # the message matters more than the mark
        publish_mod.mark_failed(
            repository.kept_repository(store, Access.from_config(config)), snapshot
        )
    return (
        f"{dataset}: validation FAILED, so main was not moved: it stays at snapshot "
        f"{record['base']}. The snapshot that failed, {snapshot}, is kept on branch "
        f"{record['branch']} of {store}; {failed} lists the mismatches"
    )


def _change(record: dict[str, Any]) -> snapshots.Change:
    change = record["change"]
    return snapshots.Change(
        change["action"],
        appended=change["appended"],
        rescanned=change["rescanned"],
        dropped=change["dropped"],
    )


def _digest(repo: Any, snapshot: str) -> str:
    return dict(repo.lookup_snapshot(snapshot).metadata or {}).get("input_digest", "")


def checksum(row: Scanned) -> str | datetime | None:
    """What Icechunk checks before serving a chunk of this file: its ETag where the server
    gives a strong one, else its Last-Modified time (plus a second for servers that round
    it down); a file that changed after the commit is then refused, never misread."""
    if row.etag and not row.etag.startswith("W/"):
        return row.etag
    return snapshots.checksum_time(row.last_modified)


def _write_skipped(path: str, skipped: list[dict[str, str]], dataset: str) -> None:
    rows = "".join(f"{s['file_id']}\t{s['url']}\t{s['reason']}\n" for s in skipped)
    atomic_write_text(path, "file_id\turl\treason\n" + rows)
    if skipped:
        log.warning("%s: %d file(s) skipped, listed in %s", dataset, len(skipped), path)


def _file_extents(plan: Plan, rows: dict[str, Scanned]) -> list[dict[str, Any]]:
    """Where each file's piece lies along the concatenation dimension of the store (of its
    part's dimension, in a fused dataset: the parts' files lie side by side)."""
    where: dict[str, tuple[int, int]] = {}
    for array in plan.arrays.values():
        for part in array.parts if array.axis is not None else []:
            where.setdefault(part.file_id, (part.offset, part.var.shape[0]))
    part_of = {f: p for p, d in plan.fusion.get("parts", {}).items() for f in d["files"]}
    extents = []
    for file_id in plan.files:
        row, (start, length) = rows[file_id], where.get(file_id, (0, 0))
        extent = {"file_id": file_id, "url": row.url, "start": start, "length": length}
        extent["version"] = {"size": row.size, "etag": row.etag, "last_modified": row.last_modified}
        if file_id in part_of:
            extent["part"] = part_of[file_id]
        extents.append(extent)
    return extents


def _concat_dim(plan: Plan, ds: dict[str, Any]) -> str:
    """The dimension the files are concatenated along (a fused dataset's first part's)."""
    parts = plan.fusion.get("parts")
    return next(iter(parts.values()))["concat_dim"] if parts else ds["concat_dim"]


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
