"""How much a scan costs per file: HTTP requests, CPU time and wall time.

    python benchmarks/scan.py [--files 40] [--latency-ms 20]

Writes CMOR-like monthly files (zlib, 120 months x 90 x 180, about 5 MB each), serves them
over HTTP on loopback with a fixed delay per request, scans each in this process and prints
the per-file cost. Results are recorded in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from servers import HTTPServer, free_port  # noqa: E402

from nc2ice.access import Access  # noqa: E402
from nc2ice.scan import scan_file  # noqa: E402


def write_files(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        time_ = pd.date_range(f"{1850 + 10 * i}-01-01", periods=120, freq="MS")
        ds = xr.Dataset(
            {"tas": (("time", "lat", "lon"), rng.normal(280, 5, (120, 90, 180)).astype("f4"))},
            coords={"time": time_, "lat": np.linspace(-89, 89, 90), "lon": np.arange(180) * 2.0},
        )
        path = folder / f"tas_{i:03d}.nc"
        ds.to_netcdf(path, encoding={"tas": {"zlib": True, "chunksizes": (1, 90, 180)}})
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_files(Path(tmp), args.files)
        size = sum(p.stat().st_size for p in paths) / len(paths)
        server = HTTPServer(Path(tmp), port=free_port()).start()
        server.delay_s = args.latency_ms / 1000
        access = Access()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for p in paths:
            scan_file(f"{server.url}/{p.name}", access, size=p.stat().st_size, inline_limit=8192)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        server.stop()
    n = len(paths)
    print(f"files: {n}, mean size {size / 1e6:.1f} MB, latency {args.latency_ms:.0f} ms/request")
    print(f"requests per file: {sum(server.requests.values()) / n:.1f} {dict(server.requests)}")
    print(f"CPU per file: {1000 * cpu / n:.1f} ms; wall per file: {1000 * wall / n:.1f} ms")


if __name__ == "__main__":
    main()
