"""Validation and report beside scan and commit: the whole workflow, timed in its two halves.

    python benchmarks/validation.py --files 1000 --local
    python benchmarks/validation.py --files 200 --delay-ms 50
    python benchmarks/validation.py --files 1000 --delay-ms 50
    python benchmarks/validation.py --files 120 --append 12 --local     # an append, timed alone

Serves the synthetic CMOR-style archive (benchmarks/archive.py) on 127.0.0.1:80 (or reads it
from disk with ``--local``), then runs the whole workflow once, ``snakemake --cores N``, and
splits its wall time where the commit ended (``commit.json`` written): before, the listing,
the scans and the commit; after, the validation, the report and publishing. HTTP requests
are counted by the server on either side of that moment. With ``--append K`` the first N - K
files are run to the end first, untimed, and then the K new ones as an append. Prints a
Markdown table, and what the validation compared and took on trust.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from archive import archive, serve

REPO = Path(__file__).resolve().parents[1]

MEASURE = r"""
import json, resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=open("stderr.log", "a"))
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "wall": time.perf_counter() - start,
                  "cpu": usage.ru_utime + usage.ru_stime, "maxrss_mb": usage.ru_maxrss / 1024}))
"""


def measured(cmd: list[str], cwd: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], cwd=cwd, capture_output=True, text=True
    )
    result = json.loads(out.stdout)
    if result["code"] != 0:
        raise SystemExit(f"{cmd[-1]} failed:\n{(cwd / 'stderr.log').read_text()[-3000:]}")
    return result


def snakemake(work: Path, cores: int, *target: str) -> list[str]:
    return [
        sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
        "--configfile", str(work / "config.yaml"), "--profile", str(REPO / "profiles/default"),
        "--cores", str(cores), *target,
    ]  # fmt: skip


def _offset(server) -> float:
    """The server times requests with time.monotonic(): its offset from the wall clock."""
    return time.time() - time.monotonic()


def _job_times(work: Path) -> dict[str, float]:
    """Each validation, report and publish job's own time, from its log's last line."""
    found = {}
    logs = work / "results/bench/logs"
    for path in sorted(
        [
            *logs.glob("validate/*.log"),
            *logs.glob("verdict.log"),
            *logs.glob("report.log"),
            *logs.glob("publish.log"),
        ]
    ):
        match = re.search(r"done in ([\d.]+) s", path.read_text())
        if match:
            found[path.stem] = float(match.group(1))
    return found  # fmt: skip


def configure(work: Path, urls: list[str], max_connections: int) -> None:
    (work / "urls.txt").write_text("\n".join(urls) + "\n")
    config = {
        "datasets": {"bench": {"sources_file": str(work / "urls.txt")}},
        "store": {"root": str(work / "stores")},
        "http": {"max_connections": max_connections},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--append", type=int, default=0, help="time an append of this many")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--max-connections", type=int, default=10)
    parser.add_argument("--local", action="store_true", help="read the files from disk")
    parser.add_argument("--keep", help="keep the working folder here")
    args = parser.parse_args()
    files = archive(args.files)
    server = serve(files[0].parent, delay_ms=args.delay_ms)
    urls = [f"file://{f}" if args.local else f"{server.url}/{f.name}" for f in files]
    where = "local files" if args.local else f"HTTP, {args.delay_ms:.0f} ms per request"
    with tempfile.TemporaryDirectory(prefix="bench-validation-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.append:
            configure(work, urls[: -args.append], args.max_connections)
            measured(snakemake(work, args.cores), work)
        configure(work, urls, args.max_connections)
        n = args.append or len(files)
        server.reset_counts()
        start = time.time()
        result = measured(snakemake(work, args.cores), work)
        end = start + result["wall"]
        split = (work / "results/bench/commit.json").stat().st_mtime
        before = sum(1 for a, _ in server.intervals if a + _offset(server) < split)
        after = len(server.intervals) - before
        halves = [
            ("list, scan, commit", split - start, before),
            ("validate, report, publish", end - split, after),
        ]
        verdict = json.loads((work / "results/bench/validation.json").read_text())
        jobs = _job_times(work)
    server.stop()
    what = f"an append of {n} to {len(files) - n} files" if args.append else f"{n} files"
    print(f"{what}, {where}, --cores {args.cores}, max_connections {args.max_connections}\n")
    print("| part of the run | wall s | requests per new file |")
    print("|---|---|---|")
    for name, wall, requests in halves:
        print(f"| {name} | {wall:.1f} | {requests / n:.2f} |")
    print(f"| whole run | {result['wall']:.1f} | {(halves[0][2] + halves[1][2]) / n:.2f} |")
    print(f"\nCPU of the whole run {result['cpu']:.1f} s, peak {result['maxrss_mb']:.0f} MB")
    print("jobs after the commit (wall s): " + ", ".join(f"{k} {v:.1f}" for k, v in jobs.items()))
    ratio = halves[1][1] / halves[0][1]
    print(f"\nvalidation + report + publish / list + scan + commit: **{ratio:.2f} x**")
    print(
        f"validation: {'passed' if verdict['passed'] else 'FAILED'}; "
        f"{len(verdict['files_compared'])} files compared as new or changed, "
        f"{len(verdict['files_rechecked'])} rechecked, {verdict['trusted']['files']} taken on "
        f"trust; {verdict['chunks_checked']} chunks, {verdict['values_compared']:,} values, in "
        f"{verdict['parts']} part(s)"
    )


if __name__ == "__main__":
    main()
