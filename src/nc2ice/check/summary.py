"""The run at a glance: one row per dataset (verdict, snapshot, files, references, bytes),
failures first, from what its steps left in ``results/<dataset>/``.

It is the report's first page, ``results/summary.tsv`` and the last lines of a run's log;
with thousands of datasets the page shows the failures and the first of the others, the
table holds them all.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from nc2ice.atomic import atomic_write_text

PAGE_ROWS = 300  # the report's first page stays one readable page
ORDER = {"FAILED": 0, "error": 1, "not run": 2, "passed": 3}
COLUMNS = ["dataset", "verdict", "snapshot", "files", "references", "bytes", "where", "detail"]


def rows(datasets: list[str], results: Path = Path("results")) -> list[dict[str, Any]]:
    """Every dataset's row, failures first, then by name."""
    errors = _bundle_errors(results)
    found = [_row(results / d, d, _still(errors.get(d), results / d)) for d in datasets]
    return sorted(found, key=lambda r: (ORDER[r["verdict"]], r["dataset"]))


def counts(found: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in found:
        out[row["verdict"]] = out.get(row["verdict"], 0) + 1
    return out


def headline(found: list[dict[str, Any]]) -> str:
    """``12 datasets: 11 passed and published, 1 FAILED validation``."""
    said = {
        "passed": "passed and published",
        "FAILED": "FAILED validation",
        "error": "stopped by an error",
        "not run": "not run yet",
    }
    parts = [f"{n} {said[v]}" for v, n in sorted(counts(found).items(), key=lambda i: ORDER[i[0]])]
    return f"{len(found)} datasets: " + ", ".join(parts)


def write_table(found: list[dict[str, Any]], path: Path) -> None:
    atomic_write_text(path, pd.DataFrame(found, columns=COLUMNS).to_csv(sep="\t", index=False))


def html_table(found: list[dict[str, Any]]) -> str:
    """The report's first page: the headline and the table, on one line (the page embeds it
    as raw HTML)."""
    shown = found[:PAGE_ROWS]
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    body = "".join(
        f'<tr class="{r["verdict"].replace(" ", "-")}">'
        + "".join(f"<td>{html.escape(_shown(r[c]))}</td>" for c in COLUMNS)
        + "</tr>"
        for r in shown
    )
    more = (
        f"<p>The first {len(shown)} rows (failures first); results/summary.tsv lists all "
        f"{len(found)}.</p>"
        if len(found) > len(shown)
        else ""
    )
    style = (
        "<style>.nc2ice td,.nc2ice th{padding:2px 8px;text-align:left;font-size:90%}"
        ".nc2ice .FAILED,.nc2ice .error{background:#fdd}.nc2ice .not-run{background:#eee}</style>"
    )
    return (
        f"{style}<p><b>{html.escape(headline(found))}</b></p>{more}"
        f'<table class="nc2ice"><tr>{head}</tr>{body}</table>'
    )


def _row(folder: Path, dataset: str, error: str | None) -> dict[str, Any]:
    commit, verdict, published = (
        _load(folder / n) for n in ("commit.json", "validation.json", "published.json")
    )
    row = dict.fromkeys(COLUMNS, "")
    row["dataset"] = dataset
    if commit:
        report = commit.get("report", {})
        row["files"] = len(commit.get("files", []))
        row["references"] = report.get("chunk_references", "")
        row["bytes"] = sum((f.get("version") or {}).get("size") or 0 for f in commit["files"])
        row["where"] = commit["store"] + (f" ({commit['group']})" if commit.get("group") else "")
    if verdict and commit and verdict.get("snapshot") == commit.get("snapshot"):
        row["verdict"] = "passed" if verdict.get("passed") else "FAILED"
        if not verdict.get("passed"):
            first = (verdict.get("mismatches") or [{}])[0]
            row["detail"] = f"{len(verdict.get('mismatches', []))} mismatches; first: " + " ".join(
                str(first.get(k, "")) for k in ("variable", "file", "detail")
            )
    row["snapshot"] = (published or {}).get("snapshot") or (commit or {}).get("snapshot", "")
    if row["verdict"] == "passed" and not published:
        row["verdict"], row["detail"] = "error", "validated but not published"
    if error or (not row["verdict"] and (error := _logged_error(folder))):
        row["verdict"] = "FAILED" if row["verdict"] == "FAILED" else "error"
        row["detail"] = error
    row["verdict"] = row["verdict"] or "not run"
    return row


def _bundle_errors(results: Path) -> dict[str, tuple[str, float]]:
    """The errors the bundles' jobs met, by dataset (kept when the job failed), and when."""
    found = {}
    for path in sorted((results / "bundles").glob("*.last.json")):
        for row in (_load(path) or {}).get("datasets", []):
            if row.get("error"):
                found[row["dataset"]] = (row["error"], path.stat().st_mtime)
    return found


def _still(error: tuple[str, float] | None, folder: Path) -> str | None:
    """An error, unless the dataset was published after it (by another bundle since)."""
    published = folder / "published.json"
    if error is None or (published.exists() and published.stat().st_mtime > error[1]):
        return None
    return error[0]


def _logged_error(folder: Path) -> str | None:
    """The last error a step-by-step job of the dataset logged."""
    last = None
    for log in sorted((folder / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime):
        for line in log.read_text(errors="replace").splitlines():
            if " ERROR " in line:
                last = line.split(" ERROR ", 1)[1]
    return last


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _shown(value: Any) -> str:
    if isinstance(value, int) and value >= 10_000:
        return f"{value:,}"
    return str(value)
