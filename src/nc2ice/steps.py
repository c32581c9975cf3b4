"""The workflow's steps, each a function from files to files, called by one thin script each."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import zarr

from nc2ice import combine as combine_mod
from nc2ice import commit as commit_mod
from nc2ice import config as config_mod
from nc2ice import scan as scan_mod
from nc2ice import sources as sources_mod
from nc2ice.access import Access, prefix_of
from nc2ice.chunks import read_region
from nc2ice.errors import CombineError, Nc2IceError, ScanError
from nc2ice.logs import setup_logging
from nc2ice.manifest import atomic_write_text, read_manifest
from nc2ice.validate import validate

log = logging.getLogger("nc2ice")


def run(snakemake: Any, step: str) -> None:
    """Entry point of the workflow scripts: one step, its log, and a one-line error."""
    setup_logging(snakemake.log[0] if snakemake.log else None)
    try:
        STEPS[step](snakemake)
    except Nc2IceError as exc:
        log.error("%s", exc)
        sys.exit(1)
    except Exception:
        log.exception("%s failed unexpectedly", step)
        raise


def write_json(path: str | Path, doc: dict[str, Any]) -> None:
    atomic_write_text(Path(path), json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")


def list_sources(config: dict[str, Any], dataset: str, out: str) -> None:
    ds = config["datasets"][dataset]
    access = Access.from_config(config)
    patterns = list(ds.get("sources") or [])
    if ds.get("sources_file"):
        patterns += sources_mod.read_sources_file(ds["sources_file"])
    listed = sources_mod.expand(patterns, access)
    found = sources_mod.describe(
        listed, access, workers=config["http"]["max_connections"], on_error=ds["on_error"]
    )
    sources_mod.write_table(found, out)
    bad = [s for s in found if s.error]
    log.info("%s: %d source files listed, %d unreadable", dataset, len(found), len(bad))
    for s in bad:
        log.warning("%s: %s (will be skipped)", s.url, s.error)


def scan(config: dict[str, Any], dataset: str, file_id: str, sources_tsv: str, out: str) -> None:
    ds = config["datasets"][dataset]
    source = next(s for s in sources_mod.read_table(sources_tsv) if s.file_id == file_id)
    access = Access.from_config(config)
    try:
        if source.error:
            raise ScanError(f"{source.url}: {source.error}")
        scan_mod.scan_to_file(
            source.url, out, access, size=source.size or None, inline_limit=ds["inline_threshold"]
        )
    except ScanError as exc:
        if ds["on_error"] != "skip":
            raise ScanError(f"{exc} (`on_error: skip` leaves such files out)") from exc
        log.warning("skipping %s", exc)
        reason = str(exc).removeprefix(f"{source.url}: ")
        write_json(
            out, {"version": 1, "refs": {}, "nc2ice": {"source": source.url, "skipped": reason}}
        )


def commit(
    config: dict[str, Any],
    dataset: str,
    sources_tsv: str,
    manifests: list[str],
    out: str,
    skipped_tsv: str,
) -> None:
    ds = config["datasets"][dataset]
    access = Access.from_config(config)
    table = {s.file_id: s for s in sources_mod.read_table(sources_tsv)}
    loaded, skipped, digests = _load_manifests(manifests, table)
    _write_skipped(skipped_tsv, skipped, dataset)
    if not loaded:
        raise CombineError(
            f"{dataset}: no file to combine: all {len(skipped)} files were skipped as "
            f"unreadable; {skipped_tsv} lists them with the reasons"
        )
    plan = combine_mod.combine(
        loaded,
        concat_dim=ds["concat_dim"],
        variables=ds["variables"],
        drop_variables=ds["drop_variables"],
        on_chunk_mismatch=ds["on_chunk_mismatch"],
        max_materialized_fraction=ds["max_materialized_fraction"],
        concat_order=ds["concat_order"],
        reader=lambda var: read_region(var, tuple(slice(0, n) for n in var.shape), access),
    )
    report = plan.report()
    store_url = config_mod.store_url(config, dataset)
    settings = config_mod.store_settings(ds)
    inputs = {"manifests": digests, "dataset": settings, "store": store_url}
    metadata = {
        "dataset": dataset,
        "input_digest": commit_mod.input_digest(inputs),
        "sources": {f: {"url": table[f].url, "manifest_sha256": digests[f]} for f in plan.files},
        "config": settings,
        "versions": commit_mod.package_versions(),
        "report": {k: v for k, v in report.items() if k != "per_file"},
        "attributes": commit_mod.attribute_types(plan),
    }
    last_modified = {table[f].url: table[f].last_modified for f in plan.files}
    snapshot, new = commit_mod.commit_plan(
        plan,
        store_url=store_url,
        access=access,
        prefixes=sorted({prefix_of(url) for url in last_modified}),
        message=f"{dataset}: {len(plan.files)} files, {report['chunk_references']} references",
        metadata=metadata,
        checksums={u: commit_mod.checksum_time(t) for u, t in last_modified.items() if t},
    )
    _log_report(dataset, report, skipped)
    record = {
        "dataset": dataset,
        "store": store_url,
        "snapshot": snapshot,
        "new_commit": new,
        "concat_dim": ds["concat_dim"],
        "groups": sorted(plan.group_attrs),
        "files": _file_extents(plan, table),
        "skipped": skipped,
        "report": report,
    }
    write_json(out, record)


def _load_manifests(paths: list[str], table: dict[str, sources_mod.Source]):
    """The manifests of readable files, the files scan skipped, and each manifest's digest."""
    loaded, skipped, digests = [], [], {}
    for path in paths:
        file_id = Path(path).stem
        doc = json.loads(Path(path).read_text())
        reason = doc.get("nc2ice", {}).get("skipped")
        if reason:
            skipped.append({"file_id": file_id, "url": table[file_id].url, "reason": reason})
            continue
        digests[file_id] = commit_mod.input_digest(doc)
        loaded.append((file_id, read_manifest(path)))
    return loaded, skipped, digests


def _write_skipped(path: Path, skipped: list[dict[str, str]], dataset: str) -> None:
    rows = "".join(f"{s['file_id']}\t{s['url']}\t{s['reason']}\n" for s in skipped)
    atomic_write_text(path, "file_id\turl\treason\n" + rows)
    if skipped:
        log.warning("%s: %d file(s) skipped, listed in %s", dataset, len(skipped), path)


def _file_extents(plan: combine_mod.Plan, table) -> list[dict[str, Any]]:
    """Where each file's piece lies along the concatenation dimension of the store."""
    lengths = dict.fromkeys(plan.files, 0)
    concatenated = [a for a in plan.arrays.values() if a.axis is not None]
    if concatenated:
        lengths = {p.file_id: p.var.shape[0] for p in concatenated[0].parts}
    extents, start = [], 0
    for file_id in plan.files:
        extent = {"file_id": file_id, "url": table[file_id].url, "start": start}
        extents.append({**extent, "length": lengths[file_id]})
        start += lengths[file_id]
    return extents


def _log_report(dataset: str, report: dict[str, Any], skipped: list) -> None:
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


def validate_step(
    config: dict[str, Any], dataset: str, commit_json: str, out: str, connections: int
) -> None:
    commit_doc = json.loads(Path(commit_json).read_text())
    ds = config["datasets"][dataset]
    # Reading the store follows its references with Zarr's concurrency: keep to our share.
    zarr.config.set({"async.concurrency": max(1, connections)})
    result = validate(commit_doc, Access.from_config(config), sample_chunks=ds["sample_chunks"])
    # Snakemake deletes the outputs of a failed job, so a failed report also goes beside it.
    failed = Path(out).with_suffix(".failed.json")
    write_json(failed if not result.passed else out, result.to_dict())
    if result.passed:
        failed.unlink(missing_ok=True)
    log.info(
        "%s: validation %s: %d variables, %d chunks, %d values compared, %d mismatches",
        dataset,
        "passed" if result.passed else "FAILED",
        len(result.variables_checked),
        result.chunks_checked,
        result.values_compared,
        len(result.mismatches),
    )
    if not result.passed:
        for m in result.mismatches[:20]:
            log.error("mismatch: %s in %s: %s", m["variable"], m["file"], m["detail"])
        log.error("%s: the store does not read back as the sources; see %s", dataset, failed)
        sys.exit(1)


def _demo(smk: Any) -> None:
    from nc2ice.demo import write_demo

    files = write_demo(smk.output[0])
    log.info("demo archive: %d files written to %s", len(files), smk.output[0])


STEPS = {
    "demo_archive": _demo,
    "list_sources": lambda smk: list_sources(smk.config, smk.wildcards.dataset, smk.output[0]),
    "scan": lambda smk: scan(
        smk.config, smk.wildcards.dataset, smk.wildcards.file_id, smk.input.sources, smk.output[0]
    ),
    "commit": lambda smk: commit(
        smk.config,
        smk.wildcards.dataset,
        smk.input.sources,
        list(smk.input.manifests),
        smk.output.record,
        smk.output.skipped,
    ),
    "validate": lambda smk: validate_step(
        smk.config,
        smk.wildcards.dataset,
        smk.input[0],
        smk.output[0],
        connections=int(smk.resources.get("http", 1)),
    ),
}
