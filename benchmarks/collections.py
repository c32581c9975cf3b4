"""Collections at scale: an ESM catalog of N small datasets (2 files each), planned and run.

    python benchmarks/collections.py --datasets 100 1000 10000 --cores 2

For each N: writes an esmcat catalog (JSON + CSV, CMIP6 columns) whose N groups each hold two
small netCDF files (hard links of two generated files: the same bytes at other paths, so that
writing the archive takes seconds, not the benchmark), then times

- planning: ``snakemake -n`` (the catalog read, the datasets made, the jobs planned);
- the whole run: ``snakemake --cores C`` from nothing to every dataset published in one
  shared repository, and the jobs it ran;
- a rerun with nothing changed (every source asked again, nothing rewritten).

``--repositories K`` splits the catalog over K collection entries (by model, each with its
own query and repository), as the README advises for many thousands of datasets.

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from esm import COLUMNS, GROUPBY, cmip6_file  # noqa: E402


def catalog(folder: Path, datasets: int) -> Path:
    """``datasets`` groups of two files: models x experiments x variables to make N."""
    folder.mkdir(parents=True, exist_ok=True)
    years = []
    for year in (2000, 2001):
        path = folder / f"template-{year}.nc"
        cmip6_file("MODEL", "historical", "tas", year).to_netcdf(path)
        years.append(path)
    rows = []
    for n in range(datasets):
        model, member = f"MODEL-{n // 10:04d}", f"r{n % 10 + 1}i1p1f1"
        for year, template in zip((2000, 2001), years, strict=True):
            path = folder / model / member / f"tas_Amon_{model}_historical_{member}_{year}.nc"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                os.link(template, path)
            values = ["CMIP", "NCI", model, "historical", member, "Amon", "tas", "gn"]
            rows.append([*values, "v1", f"{year}01-{year}12", str(path)])
    pd.DataFrame(rows, columns=COLUMNS).to_csv(folder / "catalog.csv", index=False)
    spec = {
        "esmcat_version": "0.1.0",
        "id": "bench",
        "description": "benchmark catalog",
        "catalog_file": "catalog.csv",
        "attributes": [{"column_name": c} for c in COLUMNS[:-1]],
        "assets": {"column_name": "path", "format": "netcdf"},
        "aggregation_control": {
            "variable_column_name": "variable_id",
            "groupby_attrs": [*GROUPBY, "member_id"],
            "aggregations": [
                {
                    "type": "join_existing",
                    "attribute_name": "time_range",
                    "options": {"dim": "time"},
                }
            ],
        },
    }
    (folder / "catalog.json").write_text(json.dumps(spec))
    return folder / "catalog.json"


def snakemake(workdir: Path, cores: int, *args: str) -> tuple[float, str]:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--profile",
        str(REPO / "profiles/default"),
        "--cores",
        str(cores),
        *args,
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return wall, proc.stdout + proc.stderr


def jobs(output: str) -> int:
    done = re.findall(r"(\d+) of \d+ steps \(100%\) done", output)
    return int(done[-1]) - 1 if done else 0  # without the target rule `all`


def collections(cat: Path, datasets: int, repositories: int, root: Path) -> dict:
    """One collection entry per repository, each querying its share of the models."""
    if repositories == 1:
        return {"bench": {"catalog": str(cat)}}
    models = [f"MODEL-{m:04d}" for m in range(-(-datasets // 10))]
    share = -(-len(models) // repositories)
    return {
        f"bench{r}": {
            "catalog": str(cat),
            "query": {"source_id": models[r * share : (r + 1) * share]},
            "repository": str(root / f"bench{r}.icechunk"),
        }
        for r in range(repositories)
    }


def run(
    datasets: int, cores: int, root: Path, plan_only: bool = False, repositories: int = 1
) -> dict:
    cat = catalog(root / "archive", datasets)
    work = root / "run"
    work.mkdir(parents=True, exist_ok=True)
    config = {
        "collections": collections(cat, datasets, repositories, root),
        "store": {"repository": str(root / "bench.icechunk")},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    plan, dry = snakemake(work, cores, "-n")
    if plan_only:
        planned = jobs_planned(dry)
        return {
            "datasets": datasets,
            "repositories": repositories,
            "planning_s": plan,
            "jobs_planned": planned,
        }
    whole, out = snakemake(work, cores)
    rerun, again = snakemake(work, cores)
    summary = (work / "results/summary.tsv").read_text().splitlines()[1:]
    passed = sum("\tpassed\t" in line for line in summary)
    return {
        "datasets": datasets,
        "repositories": repositories,
        "planning_s": plan,
        "jobs_planned": jobs_planned(dry),
        "run_s": whole,
        "jobs": jobs(out),
        "published": passed,
        "rerun_s": rerun,
        "rerun_jobs": jobs(again),
    }


def jobs_planned(dry: str) -> int:
    found = re.search(r"^total\s+(\d+)", dry, re.M)
    return int(found.group(1)) - 1 if found else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--plan-only", action="store_true", help="time the planning alone")
    parser.add_argument("--repositories", type=int, default=1, help="split over K repositories")
    args = parser.parse_args()
    rows = []
    for n in args.datasets:
        with tempfile.TemporaryDirectory(prefix=f"nc2ice-collections-{n}-") as tmp:
            rows.append(run(n, args.cores, Path(tmp), args.plan_only, args.repositories))
            print(json.dumps(rows[-1]), flush=True)
    columns = ["datasets", "repositories", "planning (s)", "jobs", "whole run (s)", "published"]
    print("\n| " + " | ".join([*columns, "rerun (s)"]) + " |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "run_s" not in r:  # --plan-only
            print(
                f"| {r['datasets']:,} | {r['repositories']} | {r['planning_s']:.1f} | "
                f"{r['jobs_planned']} planned ||||"
            )
            continue
        print(
            f"| {r['datasets']:,} | {r['repositories']} | {r['planning_s']:.1f} | {r['jobs']} | "
            f"{r['run_s']:.0f} | {r['published']:,} | {r['rerun_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
