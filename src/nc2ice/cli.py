"""The nc2ice command: look at a store without writing Python."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

DESCRIPTION = """\
Look at an Icechunk store written by the nc2ice workflow.

  nc2ice show results/stores/demo.icechunk
  nc2ice show s3://bucket/stores/x.icechunk --configfile my.yaml
  nc2ice pbs-status 1234.gadi-pbs       (what the Gadi profile asks PBS)

The workflow itself runs with snakemake (see the README).
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="nc2ice", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="print a store's dataset and its commit history")
    show.add_argument("store", help="a local folder or s3://bucket/prefix/name.icechunk")
    show.add_argument("--configfile", help="the workflow config (for S3 endpoints)")
    status = sub.add_parser("pbs-status", help="a PBS job's state: running, success or failed")
    status.add_argument("jobid")
    args = parser.parse_args(argv)
    if args.command == "pbs-status":
        from nc2ice.hpc.pbs import main as pbs_status

        pbs_status(args.jobid)
        return
    # here, not at the top: `pbs-status` runs every few seconds and must start fast
    from nc2ice.access import Access, normalize_url
    from nc2ice.store.open import open_store_dataset
    from nc2ice.store.repository import BRANCH, open_repository

    config = yaml.safe_load(Path(args.configfile).read_text()) if args.configfile else {}
    access = Access.from_config(config)
    store = normalize_url(args.store)
    print(open_store_dataset(store, access))
    repo = open_repository(store, access)
    print(f"\nhistory of {BRANCH!r}:")
    for snapshot in repo.ancestry(branch=BRANCH):
        print(f"  {snapshot.id}  {snapshot.written_at:%Y-%m-%d %H:%M}  {snapshot.message}")
    waiting = sorted(b for b in repo.list_branches() if b != BRANCH)
    if waiting:  # snapshots not published: failed validation, or a run that was stopped
        print("\nsnapshots not on main (not validated, or failed validation):")
        for branch in waiting:
            info = repo.lookup_snapshot(repo.lookup_branch(branch))
            print(f"  {branch}: {info.id}  {info.written_at:%Y-%m-%d %H:%M}  {info.message}")
