"""Pages for Snakemake's report: what a store holds and whether to trust it, at a glance.

For each dataset: a summary (sources by server, files, variables, references, bytes
referenced, split and copied, the snapshot and its tag, the validation's verdict), a
coverage plot along the concatenation dimension (one bar per file: gaps, overlaps, files
copied, changed or skipped), a quicklook of each data variable read through the store
beside the same field read from its source, and the tables of what was split, copied,
loaded, dropped or skipped, and why.
"""

from __future__ import annotations

import html
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files, not windows
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nc2ice.access import Access  # noqa: E402
from nc2ice.atomic import atomic_write_text  # noqa: E402

log = logging.getLogger(__name__)
CELL_ATTRS = ("bounds", "climatology")  # variables that only describe a coordinate's cells
COLOURS = {"as is": "#4c72b0", "split": "#55a868", "copied": "#dd8452", "changed": "#c44e52"}
STYLE = """<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } .passed { color: #1a7f37; } .failed { color: #c62828; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
</style>"""


def make_report(
    commit: dict[str, Any],
    validation: dict[str, Any],
    access: Access,
    out: Path,
    quicklook: str | Path | None = None,
) -> dict[str, Any]:
    """Write summary.html, coverage.png, tables.html and quicklook/<variable>.png."""
    out.mkdir(parents=True, exist_ok=True)
    figures = key_figures(commit, validation)
    atomic_write_text(out / "summary.html", _summary_html(commit, validation, figures))
    atomic_write_text(out / "tables.html", _tables_html(commit, validation))
    coverage(commit, out / "coverage.png", access)
    quicklooks(commit, quicklook, out / "quicklook")
    return figures


def key_figures(commit: dict[str, Any], validation: dict[str, Any]) -> dict[str, Any]:
    """The numbers the summary shows, each from commit.json or validation.json."""
    report = commit["report"]
    servers = Counter(_server(f["url"]) for f in commit["files"])
    return {
        "dataset": commit["dataset"],
        "store": commit["store"],
        "snapshot": commit["snapshot"],
        "tag": commit.get("tag") or "",
        "branch": commit.get("branch") or "",
        "action": (commit.get("change") or {}).get("summary", commit.get("action", "")),
        "files": report["files"],
        "skipped files": len(commit.get("skipped", [])),
        "variables": report["arrays"],
        "chunk references": report["chunk_references"],
        "bytes referenced as stored": report.get("referenced_bytes", 0),
        "bytes referenced by split ranges": report.get("split_bytes", 0),
        "bytes copied into the store": report["copied_bytes"],
        "sources": dict(servers),
        "validation": "passed" if validation.get("passed") else "FAILED",
        "files compared (new or changed)": len(validation.get("files_compared", [])),
        "files compared again (a sample)": len(validation.get("files_rechecked", [])),
        "files taken on trust": (validation.get("trusted") or {}).get("files", 0),
        "vouched for by snapshot": (validation.get("trusted") or {}).get("snapshot") or "",
        "validation jobs": validation.get("parts", 1),
        "variables compared": len(validation.get("variables_checked", [])),
        "chunks compared": validation.get("chunks_checked", 0),
        "values compared": validation.get("values_compared", 0),
        "attributes compared": validation.get("attributes_compared", 0),
        "mismatches": len(validation.get("mismatches", [])),
    }


def _server(url: str) -> str:
    scheme, _, rest = url.partition("://")
    if scheme == "file":
        return "local files"
    return f"{scheme}://{rest.split('/', 1)[0]}"


# -- pages ------------------------------------------------------------------------------------


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title>{STYLE}</head><body>{body}</body></html>\n"
    )


def _row(name: str, value: Any) -> str:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    shown = f"{value:,}" if number else html.escape(str(value))
    key = html.escape(name)
    kind = "n" if number else ""
    return f'<tr><th>{key}</th><td class="{kind}" data-figure="{key}">{shown}</td></tr>'


def _summary_html(commit, validation, figures: dict[str, Any]) -> str:
    verdict = figures["validation"]
    rows = "".join(
        _row(k, v) for k, v in figures.items() if k not in ("sources", "dataset", "validation")
    )
    sources = "".join(_row(server, n) for server, n in figures["sources"].items())
    compared = ", ".join(validation.get("variables_checked", [])) or "nothing"
    if not commit.get("new_commit"):
        fate = "It is the snapshot main already holds for this dataset."
    elif validation.get("passed"):
        fate = f"The publish step moves main to it and tags it {commit.get('tag')}."
    else:
        fate = (
            f"main is not moved to it: it stays at {commit.get('base')}, and the snapshot is "
            f"kept on branch {commit.get('branch')} for inspection."
        )
    said = (
        "the store read back through Icechunk equals the source files"
        if validation.get("passed")
        else "the store does not read back as the source files (mismatches below)"
    )
    mismatches = "".join(
        f"<li>{html.escape(m['variable'] or '')} in {html.escape(m['file'])}: "
        f"{html.escape(m['detail'])}</li>"
        for m in validation.get("mismatches", [])[:50]
    )
    return _page(
        f"{figures['dataset']}: summary",
        f"<h1>{html.escape(figures['dataset'])}</h1>"
        f'<p>Validation <strong class="{verdict.lower()}" data-figure="validation">{verdict}'
        f"</strong>: {said} (compared: {html.escape(compared)}). {html.escape(fate)}</p>"
        + (f"<h2>Mismatches</h2><ul>{mismatches}</ul>" if mismatches else "")
        + f"<table>{rows}</table><h2>Files by server</h2><table>{sources}</table>"
        + _read_with_html(commit),
    )


def _read_with_html(commit: dict[str, Any]) -> str:
    """How to open the dataset once published: ``nc2ice.open``, or plain Icechunk and
    xarray for readers without nc2ice (the code ``commit.json`` records as ``read_with``)."""
    code = commit.get("read_with")
    if not code:
        return ""
    group = f", group={commit['group']!r}" if commit.get("group") else ""
    short = f"import nc2ice\nds = nc2ice.open({commit['store']!r}{group})"
    return (
        "<h2>Reading it</h2><p>Once published (on <code>main</code>), with nc2ice "
        "(anonymous unless AWS credentials are in the environment; an S3-compatible "
        "endpoint from <code>endpoint_url=</code> or <code>AWS_ENDPOINT_URL</code>):</p>"
        f"<pre><code>{html.escape(short)}</code></pre>"
        "<p>or without it, with Icechunk and xarray alone:</p>"
        f'<pre><code id="read-with">{html.escape(code)}</code></pre>'
    )


def _tables_html(commit, validation) -> str:
    report = commit["report"]
    per_file = report.get("per_file", {})
    sections = [
        ("Files split into smaller references", [(f,) for f in report["files_split"]], ["file"]),
        (
            "Files partly copied into the store",
            [
                (
                    f,
                    per_file.get(f, {}).get("copied_bytes", ""),
                    "; ".join(report["copied_why"].get(f, [])),
                )
                for f in report["files_copied"]
            ],
            ["file", "bytes", "why"],
        ),
        ("Variables copied", list(report.get("copied_variables", {}).items()), ["variable", "why"]),
        ("Variables stored as values", [(v,) for v in report["loaded_arrays"]], ["variable"]),
        ("Variables left out", list(report["dropped_variables"].items()), ["variable", "why"]),
        (
            "Files skipped",
            [(s["file_id"], s["url"], s["reason"]) for s in commit.get("skipped", [])],
            ["file", "URL", "why"],
        ),
        (
            "Types a Zarr reader decodes differently",
            [
                (k, d.get("netcdf"), d.get("zarr"))
                for k, d in report.get("dtype_differences", {}).items()
            ],
            ["variable", "netCDF readers", "xr.open_zarr"],
        ),
        (
            "Chunk grids",
            [(k, " × ".join(map(str, g))) for k, g in report["grids"].items()],
            ["variable", "grid"],
        ),
        ("Notes", [(n,) for n in report["notes"]], ["note"]),
    ]
    body = [f"<h1>{html.escape(commit['dataset'])}: what the commit did</h1>"]
    for title, rows, columns in sections:
        body.append(f"<h2>{html.escape(title)} ({len(rows)})</h2>")
        if not rows:
            body.append("<p>None.</p>")
            continue
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        cells = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
            for row in rows
        )
        body.append(f"<table><tr>{head}</tr>{cells}</table>")
    return _page(f"{commit['dataset']}: tables", "".join(body))


# -- plots -------------------------------------------------------------------------------------


def coverage(commit: dict[str, Any], path: Path, access: Access) -> None:
    """One bar per file along the concatenation dimension, coloured by what the commit did
    with it; a red band where neighbours leave a gap or overlap; skipped files in the title."""
    files = commit["files"]
    starts, ends, axis = _extents(commit, access)
    per_file = commit["report"].get("per_file", {})
    change = commit.get("change") or {}
    changed = (
        set()
        if change.get("action") == "created"
        else {
            *change.get("appended", []),
            *change.get("rescanned", []),
        }
    )
    height = 0.28 * len(files) + 2 if len(files) <= 60 else 6
    fig, ax = plt.subplots(figsize=(10, max(3, height)))
    tolerance = 0.25 * float(np.median(np.subtract(ends, starts))) / max(1, _steps(files))
    kinds = []
    for entry in files:
        fate = per_file.get(entry["file_id"], {})
        kinds.append("copied" if fate.get("copied") else "split" if fate.get("split") else "as is")
    rows, lefts = np.arange(len(files)), np.asarray(starts, dtype="f8")
    widths = np.asarray(ends, dtype="f8") - lefts
    colours = [COLOURS[k] for k in kinds]  # one call for all bars: thousands of files draw fast
    ax.barh(rows, widths, left=lefts, color=colours, edgecolor="white", height=0.8)
    new = np.array([e["file_id"] in changed for e in files], dtype=bool)
    if new.any():
        ax.barh(
            rows[new], widths[new], left=lefts[new], fill=False, edgecolor=COLOURS["changed"], lw=2
        )
    for i in range(1, len(files)):
        if abs(starts[i] - ends[i - 1]) > tolerance:
            low, high = sorted((starts[i], ends[i - 1]))
            ax.axvspan(low, high, color="#c44e52", alpha=0.3)
    if len(files) <= 60:
        ax.set_yticks(range(len(files)), [f["file_id"] for f in files], fontsize=7)
    ax.invert_yaxis()
    dim = commit["concat_dim"]
    labels = {"positions": f"index along {dim}", "years": f"{dim} (years)"}
    ax.set_xlabel(labels.get(axis, dim))
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    labels = ["referenced as is", "split", "partly copied", "new or changed"]
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=4, fontsize=7)
    skipped = commit.get("skipped", [])
    title = f"{commit['dataset']}: {len(files)} files along {commit['concat_dim']}"
    if skipped:
        title += f"; {len(skipped)} skipped: " + ", ".join(s["file_id"] for s in skipped[:5])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _steps(files: list[dict[str, Any]]) -> float:
    return float(np.median([f["length"] for f in files])) if files else 1.0


def _extents(commit: dict[str, Any], access: Access) -> tuple[list[float], list[float], str]:
    """Each file's start and end along the dimension: from the coordinate's bounds where it
    has them, else from its values (dates as numbers, see ``_numbers``). Positions (indexes)
    where the coordinate is missing, not numeric or not increasing."""
    files = commit["files"]
    positions = [f["start"] for f in files], [f["start"] + f["length"] for f in files], "positions"
    try:
        lows, highs, kind = _edges(commit, access)
    except Exception:  # noqa: BLE001 - no usable coordinate: positions will do
        return positions
    if lows is None or len(lows) != sum(f["length"] for f in files):
        return positions
    if len(lows) > 1 and not (np.diff(lows) > 0).all():
        return positions  # a counter that restarts in each file: positions tell more
    starts, ends = [], []
    for f in files:
        if f["length"]:
            starts.append(float(lows[f["start"]]))
            ends.append(float(highs[f["start"] + f["length"] - 1]))
        else:  # a file with no steps (an empty record dimension): a point where it would be
            at = float(highs[f["start"] - 1]) if f["start"] else float(lows[0])
            starts.append(at)
            ends.append(at)
    return starts, ends, kind


def _edges(commit: dict[str, Any], access: Access):
    """Where each step of the concatenation coordinate begins and ends, as numbers to plot:
    its bounds, or its points widened by half a step. Read as stored; only the numbers are
    decoded (a thousand files of monthly steps: decoding every date costs seconds)."""
    from nc2ice.store.open import open_store_dataset

    group = commit.get("group") or None
    ds = open_store_dataset(commit["store"], access, group, commit["snapshot"], decode=False)
    coord = ds[commit["concat_dim"]]
    name = coord.attrs.get("bounds")
    raw = ds[name].values if name in ds.variables else None
    low = raw[:, 0] if raw is not None and raw.ndim == 2 else coord.values
    high = raw[:, 1] if raw is not None and raw.ndim == 2 else coord.values
    lows, kind = _as_numbers(low, coord.attrs)
    highs, _ = _as_numbers(high, coord.attrs)
    if kind == "values" and lows.dtype.kind not in "iuf":
        return None, None, kind
    if raw is None:  # points: a file reaches half a step beyond its first and last
        half = float(np.median(np.diff(lows))) / 2 if len(lows) > 1 else 0.5
        lows, highs = lows - half, highs + half
    return lows, highs, kind


def _as_numbers(raw: np.ndarray, attrs: dict[str, Any]) -> tuple[np.ndarray, str]:
    """Raw coordinate numbers as numbers to plot: decimal years for times of any calendar
    (one date per year of steps is decoded), the numbers themselves otherwise."""
    units = str(attrs.get("units", ""))
    if "since" not in units or raw.dtype.kind not in "iuf":
        return raw, "values"
    import cftime

    calendar = str(attrs.get("calendar", "standard"))
    origin = cftime.num2date(0, units, calendar, only_use_cftime_datetimes=True)
    year = {"360_day": 360.0, "noleap": 365.0, "365_day": 365.0, "all_leap": 366.0}
    per_year = year.get(calendar.lower(), 365.2425)
    days = cftime.date2num(origin, "days since 0001-01-01", calendar=origin.calendar)
    scale = _days_per_unit(units)
    return 1 + (float(days) + raw.astype("f8") * scale) / per_year, "years"


def _days_per_unit(units: str) -> float:
    word = units.split()[0].lower().rstrip("s")
    return {"day": 1.0, "hour": 1 / 24, "minute": 1 / 1440, "second": 1 / 86400}.get(word, 1.0)


def quicklooks(commit, quicklook: str | Path | None, folder: Path) -> list[Path]:
    """Each data variable as the validation read it, from the store beside the same field
    read directly from its source (``quicklook``: the fields the validation kept; no source
    is opened again).  A variable that cannot be drawn gets a page saying why."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    fields, meta = _fields(quicklook)
    made = []
    for name, info in meta.items():
        path = folder / f"{name.replace('/', '_')}.png"
        try:
            _quicklook(name, fields[f"{name}::store"], fields[f"{name}::source"], info, path)
        except Exception as exc:  # noqa: BLE001 - one odd variable must not lose the rest
            log.warning("%s: no quicklook of %s: %s", commit["dataset"], name, exc)
            _no_quicklook(name, f"{type(exc).__name__}: {exc}", path)
        made.append(path)
    return made


def _fields(path: str | Path | None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if not path or not Path(path).exists() or not Path(path).stat().st_size:
        return {}, {}
    import ast

    with np.load(path, allow_pickle=False) as found:
        fields = {k: found[k] for k in found.files if k != "meta"}
        meta = ast.literal_eval(str(found["meta"]))
    bounds = {
        str(v)
        for info in meta.values()
        for k, v in info.get("attrs", {}).items()
        if k in CELL_ATTRS
    }
    return fields, {n: i for n, i in meta.items() if n not in bounds}


def _no_quicklook(name: str, why: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(11, 1.5))
    ax.axis("off")
    ax.text(0.01, 0.5, f"{name}: no quicklook ({why})"[:300], va="center", fontsize=9, wrap=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _quicklook(name: str, stored: np.ndarray, source: np.ndarray, info, path: Path) -> None:
    """A map of the first step for gridded data, a line for series."""
    dims = info["dims"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    pair = (("store", stored), (f"source: {info['file_id']}", source))
    shown = []
    for _, values in pair:
        values = np.asarray(values, dtype="f8")
        while values.ndim > 2:  # the first step, the first level
            values = values[0]
        shown.append(values)
    finite = [v[np.isfinite(v)] for v in shown]
    limits = {}
    if shown[0].ndim == 2 and all(v.size for v in finite):
        limits = {"vmin": min(v.min() for v in finite), "vmax": max(v.max() for v in finite)}
    start = ", ".join(f"{d} {a}" for d, (a, _) in zip(dims, info["region"], strict=False))
    for ax, (label, _), values in zip(axes, pair, shown, strict=True):
        if values.ndim == 2:
            image = ax.imshow(values, origin="lower", aspect="auto", **limits)
            fig.colorbar(image, ax=ax)
            ax.set_xlabel(dims[-1])
            ax.set_ylabel(dims[-2])
        else:
            ax.plot(np.atleast_1d(values))
            ax.set_xlabel(dims[0] if dims else "")
        ax.set_title(f"{name}, {label}", fontsize=9)
    fig.suptitle(f"{name}: the field the validation compared (from {start})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def load(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
