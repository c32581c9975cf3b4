"""The commit step on many references: time and peak memory.

    python benchmarks/commit.py --files 100 --chunks 1000      # 10^5 references
    python benchmarks/commit.py --files 1000 --chunks 1000     # 10^6
    python benchmarks/commit.py --files 10000 --chunks 1000    # 10^7

Writes synthetic manifests (one per file, laid out as the scan lays them out: a folder per
batch of 100 and its index), as CMOR-style monthly files would give: `tas` with one chunk
per time step, and time, bounds and lat/lon loaded.  Then runs the commit step (combine and
commit to a local Icechunk store) in its own process and reports its wall time, CPU time and
peak memory.  The files themselves are never read: a commit only writes references.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BATCH = 100

RUN = r"""
import json, resource, sys, time
from nc2ice.store.dataset import commit_dataset
from nc2ice.logs import setup_logging
work = sys.argv[1]
config = json.loads(open(f"{work}/config.json").read())
setup_logging(f"{work}/commit.log")
start = time.perf_counter()
indexes = sorted(str(p) for p in __import__("pathlib").Path(work, "manifests").glob("b*.tsv"))
commit_dataset(config, "bench", indexes, f"{work}/commit.json", f"{work}/skipped.tsv")
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall": time.perf_counter() - start, "cpu": usage.ru_utime + usage.ru_stime,
                  "maxrss_mb": usage.ru_maxrss / 1024}))
"""


def write_manifests(work: Path, files: int, chunks: int) -> int:
    """Manifests of ``files`` files of ``chunks`` time steps each; returns their bytes."""
    from nc2ice.model.index import Scanned, write_index
    from nc2ice.model.manifest import Manifest, Variable, write_manifest

    total = 0
    lat, lon = np.linspace(-89.5, 89.5, 180), np.arange(360.0)
    for b in range(0, files, BATCH):
        folder = work / "manifests" / f"b{b // BATCH:05d}"
        rows = []
        for i in range(b, min(files, b + BATCH)):
            url = f"file:///archive/tas_{i:05d}.nc"
            start = float(i * chunks)
            time_ = np.arange(start, start + chunks) + 0.5
            tas = Variable(
                "tas", ("time", "lat", "lon"), (chunks, 180, 360), (1, 180, 360), "<f4",
                {"units": "K"}, compressor={"id": "zlib", "level": 1}, virtual=True,
                refs={(t, 0, 0): (url, 4096 + 250_000 * t, 240_000 + t % 7) for t in range(chunks)},
            )  # fmt: skip
            variables = {
                "tas": tas,
                "time": Variable(
                    "time", ("time",), (chunks,), (chunks,), "<f8",
                    {"units": "days since 1850-01-01", "bounds": "time_bnds"}, data=time_,
                ),
                "time_bnds": Variable(
                    "time_bnds", ("time", "bnds"), (chunks, 2), (chunks, 2), "<f8", {},
                    data=np.stack([time_ - 0.5, time_ + 0.5], axis=1),
                ),
                "lat": Variable("lat", ("lat",), (180,), (180,), "<f8", {}, data=lat),
                "lon": Variable("lon", ("lon",), (360,), (360,), "<f8", {}, data=lon),
            }  # fmt: skip
            manifest = Manifest(url, variables, {"": {"title": "bench"}})
            path = folder / f"tas_{i:05d}.json"
            digest = write_manifest(manifest, path)
            total += path.stat().st_size
            rows.append(Scanned(f"tas_{i:05d}", url, manifest=path.name, sha256=digest))
        write_index(rows, work / "manifests" / f"b{b // BATCH:05d}.tsv")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--workdir", default=None, help="work here, and keep it (logs, store)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.workdir:
            work = Path(args.workdir)
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-commit-")))
        print(bench(work, args.files, args.chunks))


def bench(work: Path, files: int, chunks: int) -> str:
    start = time.perf_counter()
    size = write_manifests(work, files, chunks)
    refs = files * chunks
    print(f"{files} manifests of {chunks} references written in "
          f"{time.perf_counter() - start:.0f} s: {size / 1e6:.0f} MB, "
          f"{size / refs:.0f} bytes per reference")  # fmt: skip
    config = {
        "datasets": {"bench": _dataset()},
        "store": {"root": str(work / "stores")},
        "http": {"max_connections": 10},
    }
    (work / "config.json").write_text(json.dumps(config))
    out = subprocess.run(
        [sys.executable, "-c", RUN, str(work)], capture_output=True, text=True, cwd=REPO
    )
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    result = json.loads(out.stdout.splitlines()[-1])
    return (
        f"| {refs:.0e} references | {result['wall']:.1f} s | CPU {result['cpu']:.1f} s | "
        f"peak {result['maxrss_mb']:.0f} MB |"
    )


def _dataset() -> dict:
    """The default settings of a dataset, as the workflow fills them in."""
    from nc2ice.config import validate

    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    return validate({"datasets": {"bench": {"sources": ["x"]}}}, schema)["datasets"]["bench"]


if __name__ == "__main__":
    main()
