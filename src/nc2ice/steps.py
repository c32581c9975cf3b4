"""The workflow's steps: what each thin script in workflow/scripts calls, with its log and a
one-line error for problems of the input (anything else keeps its traceback)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from nc2ice.access import Access
from nc2ice.errors import Nc2IceError, out_of_space
from nc2ice.logs import Progress, setup_logging

# Each step imports what it needs when it runs: a scan job then starts without the
# data stack (xarray, zarr, Icechunk), a third of a second less for every batch.

log = logging.getLogger("nc2ice")


def run(snakemake: Any, step: str) -> None:
    """Entry point of the workflow scripts: one step, its log, and a one-line error."""
    setup_logging(snakemake.log[0] if snakemake.log else None)
    start, cpu = time.perf_counter(), time.process_time()
    try:
        STEPS[step](snakemake)
        log.info(
            "%s done in %.1f s (CPU %.1f s, besides %.1f s starting Python)",
            step,
            time.perf_counter() - start,
            time.process_time() - cpu,
            cpu,
        )
    except Nc2IceError as exc:
        log.error("%s", exc)
        sys.exit(1)
    except Exception as exc:
        full = out_of_space(exc)
        if full is None:
            log.exception("%s failed unexpectedly", step)
            raise
        log.error("%s failed: %s", step, full)
        sys.exit(1)


def scan(
    config: dict[str, Any], dataset: str, batch_tsv: str, index_out: str, connections: int = 1
) -> None:
    from nc2ice.model.index import write_index
    from nc2ice.scan.scanner import scan_batch
    from nc2ice.sources.files import read_table

    ds = config["datasets"][dataset]
    sources = read_table(batch_tsv)
    batch = Path(batch_tsv).stem
    folder = Path(index_out).with_suffix("")
    start, cpu = time.perf_counter(), time.process_time()
    rows = scan_batch(
        sources,
        folder,
        Access.from_config(config),
        inline_limit=ds["inline_threshold"],
        connections=connections,
        head_bytes=ds["head_bytes"],
        on_error=ds["on_error"],
        progress=Progress(f"{dataset} {batch}: scanned", len(sources)),
    )
    write_index(rows, index_out)
    fresh = [r for r in rows if not (r.reused or r.skipped)]
    log.info(
        "%s %s: %d files: %d scanned, %d unchanged (manifests kept), %d skipped; "
        "%.1f s (CPU %.2f s)",
        dataset,
        batch,
        len(rows),
        len(fresh),
        sum(r.reused for r in rows),
        sum(bool(r.skipped) for r in rows),
        time.perf_counter() - start,
        time.process_time() - cpu,
    )
    remote = [r for r in fresh if r.requests]  # local files are read without requests
    if remote:
        requests, kilobytes = _mean(remote, "requests"), _mean(remote, "bytes_read") / 1e3
        log.info(
            "%s %s: per file read over the network %.1f requests, %.0f kB read",
            dataset,
            batch,
            requests,
            kilobytes,
        )
    if fresh:
        references = _mean(fresh, "references")
        log.info("%s %s: %.0f chunk references per scanned file", dataset, batch, references)


def _mean(rows: list[Any], name: str) -> float:
    return sum(getattr(r, name) for r in rows) / len(rows)


def validate_step(
    config: dict[str, Any],
    dataset: str,
    commit_json: str,
    part: int,
    out: str,
    quicklook: str,
    connections: int,
) -> None:
    """One part of a validation: its files compared, the verdict in ``out``."""
    from nc2ice.atomic import load_json, write_json

    record = load_json(commit_json)
    files = record["validation_plan"]["parts"][part]
    if not files:  # nothing of this part changed: no store, no source to open
        write_json(out, {"passed": True, "files_compared": []})
        Path(quicklook).write_bytes(b"")
        log.info("%s part %d: nothing to compare", dataset, part)
        return
    import zarr

    from nc2ice.check.compare import validate_part

    ds = config["datasets"][dataset]
    # Reading the store follows its references with Zarr's concurrency: keep to our share of
    # each server's connections, half of it (the other half fetches the sources); local
    # files: no server to spare, many at once.
    remote = any(not f["url"].startswith("file://") for f in record["files"])
    zarr.config.set({"async.concurrency": max(1, connections - connections // 2) if remote else 16})
    result = validate_part(
        record,
        files,
        Access.from_config(config),
        sample_chunks=ds["sample_chunks"],
        workers=connections,
        quicklook=quicklook,
    )
    if not Path(quicklook).exists():  # nothing to draw
        Path(quicklook).write_bytes(b"")
    write_json(out, result.to_dict())
    log.info(
        "%s part %d: %d files compared: %d variables, %d chunks, %d values, %d mismatches",
        dataset,
        part,
        len(files),
        len(result.variables_checked),
        result.chunks_checked,
        result.values_compared,
        len(result.mismatches),
    )


def verdict_step(
    config: dict[str, Any], dataset: str, commit_json: str, parts: list[str], out: str
) -> None:
    """The parts' verdicts joined into ``out`` (and ``validation.failed.json`` if it failed):
    the report shows it, and publishing moves ``main`` only if it passed."""
    from nc2ice.atomic import load_json, write_json
    from nc2ice.check.verdict import combine

    record = load_json(commit_json)
    result = combine(record, [load_json(p) for p in parts])
    failed = Path(out).with_suffix(".failed.json")
    write_json(out, result.to_dict())
    if result.passed:
        failed.unlink(missing_ok=True)
    else:
        write_json(failed, result.to_dict())
    log.info(
        "%s: validation %s: %d files compared (%d changed, %d rechecked), %d taken on trust "
        "from snapshot %s; %d variables, %d chunks, %d values, %d mismatches",
        dataset,
        "passed" if result.passed else "FAILED",
        len(result.files_compared) + len(result.files_rechecked),
        len(result.files_compared),
        len(result.files_rechecked),
        result.trusted["files"],
        result.trusted["snapshot"],
        len(result.variables_checked),
        result.chunks_checked,
        result.values_compared,
        len(result.mismatches),
    )
    if not result.passed:
        for m in result.mismatches[:20]:
            log.error("mismatch: %s in %s: %s", m["variable"], m["file"], m["detail"])
        log.error(
            "%s: the snapshot %s does not read back as the sources (see %s); main is not moved "
            "to it, and it stays on branch %s",
            dataset,
            record["snapshot"],
            failed,
            record.get("branch"),
        )


def _paths(named: Any) -> list[str]:
    """A named input as a list (Snakemake gives a lone file as a string)."""
    return [named] if isinstance(named, str) else list(named)


def _demo(smk: Any) -> None:
    from nc2ice.demo import write_demo

    files = write_demo(smk.output[0])
    log.info("demo archive: %d files written to %s", len(files), smk.output[0])


def _connections(smk: Any) -> int:
    """The most connections this job holds on any one server (its share of each)."""
    shares = [int(v) for k, v in smk.resources.items() if k.startswith("net_")]
    return max(shares, default=1) or 1


def _list_sources(smk: Any) -> None:
    from nc2ice.sources.listing import list_dataset

    table = smk.output[0]
    list_dataset(smk.config, smk.wildcards.dataset, table, Path(table).with_name("batches"))


def _commit(smk: Any) -> None:
    from nc2ice.store.dataset import commit_dataset

    dataset = smk.wildcards.dataset
    indexes = list(smk.input.indexes)
    commit_dataset(
        smk.config, dataset, indexes, smk.output.record, smk.output.skipped, smk.input.sources
    )


def _publish(smk: Any) -> None:
    from nc2ice.store.dataset import publish_dataset

    publish_dataset(
        smk.config,
        smk.wildcards.dataset,
        smk.input.commit,
        smk.input.validation,
        list(smk.input.indexes),
        smk.input.sources,
        smk.output[0],
    )


def _report(smk: Any) -> None:
    from nc2ice.check.report import load, make_report
    from nc2ice.check.verdict import combine

    commit = load(smk.input.commit)
    verdict = combine(commit, [load(p) for p in _paths(smk.input.parts)]).to_dict()
    figures = make_report(
        commit,
        verdict,
        Access.from_config(smk.config),
        Path(smk.output.summary).parent,
        smk.input.quicklook,
    )
    log.info(
        "%s: report pages written: %d files, %d references, validation %s",
        smk.wildcards.dataset,
        figures["files"],
        figures["chunk references"],
        figures["validation"],
    )


def _bundle(smk: Any) -> None:
    from nc2ice.bundles import run_bundle

    run_bundle(smk.config, smk.wildcards.bundle, smk.output[0], _connections(smk))


STEPS = {
    "bundle": _bundle,
    "demo_archive": _demo,
    "list_sources": _list_sources,
    "scan": lambda smk: scan(
        smk.config, smk.wildcards.dataset, smk.input[0], smk.output[0], _connections(smk)
    ),
    "commit": _commit,
    "publish": _publish,
    "report": _report,
    "validate": lambda smk: validate_step(
        smk.config,
        smk.wildcards.dataset,
        smk.input.commit,
        int(smk.wildcards.part),
        smk.output.verdict,
        smk.output.quicklook,
        connections=_connections(smk),
    ),
    "verdict": lambda smk: verdict_step(
        smk.config, smk.wildcards.dataset, smk.input.commit, _paths(smk.input.parts), smk.output[0]
    ),
}
