"""The workflow against the plain recipes, on the same files, in the same run.

    python benchmarks/throughput.py --files 200 --delay-ms 0
    python benchmarks/throughput.py --files 1000 --delay-ms 50 --only workflow,mfdataset
    python benchmarks/throughput.py --files 200 --grid 720x1440 --chunk 12 --compression none

Serves a synthetic archive of CMOR-style files (benchmarks/archive.py) on 127.0.0.1:80 with
an optional delay per request and cap on concurrent requests, then runs, each in its own
process tree:

- ``workflow``: ``snakemake --cores N results/bench/commit.json`` (listing, batched scans,
  the commit; the validation is not counted);
- ``plain``: one Python process, ``open_virtual_dataset`` per file in a loop, ``xr.concat``,
  ``to_icechunk``, commit;
- ``mfdataset``: ``open_virtual_mfdataset(..., parallel=ThreadPoolExecutor)``, ``to_icechunk``.

The recipes open files with ``decode_times=False``: 1,000 years of files reach past 2262,
where xarray's default decoding mixes pandas and cftime dates and concatenation fails.

For each: wall time, files/s, HTTP requests and bytes per file (counted by the server), CPU
time per file and peak memory (of the whole process tree). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from archive import archive, serve

REPO = Path(__file__).resolve().parents[1]

RECIPE = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
import icechunk, xarray as xr
from obspec_utils.registry import ObjectStoreRegistry
from obstore.store import HTTPStore
from virtualizarr import open_virtual_dataset, open_virtual_mfdataset
from virtualizarr.parsers import HDFParser

which, urls, store = sys.argv[1], json.loads(open(sys.argv[2]).read()), sys.argv[3]
from obstore.store import LocalStore
http = HTTPStore.from_url("http://127.0.0.1", client_options={"allow_http": True})
registry = ObjectStoreRegistry({"http://127.0.0.1": http, "file:///": LocalStore()})
prefix = "http://127.0.0.1/" if urls[0].startswith("http") else urls[0].rpartition("/")[0] + "/"
parser = HDFParser()
if which == "plain":
    vdss = [open_virtual_dataset(u, registry=registry, parser=parser, decode_times=False)
            for u in urls]
    vds = xr.concat(vdss, dim="time", coords="minimal", compat="override", combine_attrs="override")
else:
    vds = open_virtual_mfdataset(urls, registry=registry, parser=parser, concat_dim="time",
                                 combine="nested", coords="minimal", compat="override",
                                 data_vars="minimal", combine_attrs="override",
                                 parallel=ThreadPoolExecutor, decode_times=False)
config = icechunk.RepositoryConfig.default()
container = (icechunk.http_store({"allow_http": "true"}) if prefix.startswith("http")
             else icechunk.local_filesystem_store(prefix.removeprefix("file://")))
config.set_virtual_chunk_container(icechunk.VirtualChunkContainer(prefix, container))
repo = icechunk.Repository.create(icechunk.local_filesystem_storage(store), config=config,
    authorize_virtual_chunk_access={prefix: None})
session = repo.writable_session("main")
vds.virtualize.to_icechunk(session.store)
session.commit("plain recipe")
"""

MEASURE = r"""
import json, resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=open("stderr.log", "w"))
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "wall": time.perf_counter() - start,
                  "cpu": usage.ru_utime + usage.ru_stime, "maxrss_mb": usage.ru_maxrss / 1024}))
"""


def run_measured(cmd: list[str], cwd: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], cwd=cwd, capture_output=True, text=True
    )
    result = json.loads(out.stdout)
    if result["code"] != 0:
        raise SystemExit(f"{cmd[:4]} failed:\n{(cwd / 'stderr.log').read_text()[-3000:]}")
    return result


def workflow(urls: list[str], work: Path, cores: int, max_connections: int) -> list[str]:
    (work / "urls.txt").write_text("\n".join(urls) + "\n")
    config = {
        "datasets": {"bench": {"sources_file": str(work / "urls.txt")}},
        "store": {"root": str(work / "stores")},
        "http": {"max_connections": max_connections},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    return [
        sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
        "--configfile", str(work / "config.yaml"), "--profile", str(REPO / "profiles/default"),
        "--cores", str(cores), "results/bench/commit.json",
    ]  # fmt: skip


def recipe(which: str, urls: list[str], work: Path) -> list[str]:
    (work / "urls.json").write_text(json.dumps(urls))
    return [sys.executable, "-c", RECIPE, which, str(work / "urls.json"), str(work / "store")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--cap", type=int, default=None, help="server: requests served at once")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--max-connections", type=int, default=10)
    parser.add_argument("--only", default="workflow,plain,mfdataset")
    parser.add_argument("--local", action="store_true", help="read the files from disk")
    parser.add_argument("--months", type=int, default=12, help="time steps per file")
    parser.add_argument("--grid", default="180x360", help="lat x lon of each time step")
    parser.add_argument("--chunk", type=int, default=1, help="time steps per chunk")
    parser.add_argument("--compression", choices=["zlib", "none"], default="zlib")
    args = parser.parse_args()
    lat, lon = map(int, args.grid.split("x"))
    files = archive(
        args.files,
        months=args.months,
        lat=lat,
        lon=lon,
        chunk=args.chunk,
        compression=args.compression,
    )
    size = sum(f.stat().st_size for f in files) / len(files)
    server = serve(files[0].parent, delay_ms=args.delay_ms, cap=args.cap)
    urls = [f"file://{f}" if args.local else f"{server.url}/{f.name}" for f in files]
    where = "local files" if args.local else f"HTTP, {args.delay_ms:.0f} ms per request"
    print(f"{len(files)} files of {size / 1e6:.1f} MB, {where}, "
          f"--cores {args.cores}, max_connections {args.max_connections}\n")  # fmt: skip
    print("| contender | wall s | files/s | requests/file | kB read/file | CPU ms/file | peak MB |")
    print("|---|---|---|---|---|---|---|")
    notes = []
    for which in args.only.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-{which}-") as tmp:
            work = Path(tmp)
            if which == "workflow":
                cmd = workflow(urls, work, args.cores, args.max_connections)
            else:
                cmd = recipe(which, urls, work)
            server.reset_counts()
            result = run_measured(cmd, work)
            n = len(files)
            if which == "workflow":
                notes.append(scan_cpu(work, n))
            print(
                f"| {which} | {result['wall']:.1f} | {n / result['wall']:.1f} | "
                f"{sum(server.requests.values()) / n:.2f} | {server.bytes_sent / n / 1e3:.0f} | "
                f"{1000 * result['cpu'] / n:.1f} | {result['maxrss_mb']:.0f} |",
                flush=True,
            )
    print("", *notes, sep="\n")
    server.stop()


def scan_cpu(work: Path, n: int) -> str:
    """The CPU the scan jobs spent per file scanning (from their logs), and besides it on
    starting Python and importing the libraries."""
    scanning = re.compile(r"skipped; [\d.]+ s \(CPU ([\d.]+) s\)")
    whole = re.compile(r"scan done in [\d.]+ s \(CPU ([\d.]+) s, besides ([\d.]+) s")
    texts = [p.read_text() for p in (work / "results" / "bench" / "logs" / "scan").glob("*.log")]
    scans = sum(float(m.group(1)) for t in texts if (m := scanning.search(t)))
    jobs = sum(float(m.group(1)) + float(m.group(2)) for t in texts if (m := whole.search(t)))
    return (
        f"workflow: the scan jobs spent {1000 * scans / n:.1f} ms of CPU per file scanning, "
        f"and {jobs - scans:.1f} s starting Python and importing ({len(texts)} jobs)"
    )


if __name__ == "__main__":
    main()
