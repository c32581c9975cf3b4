"""``nc2ice show STORE``: what a store holds and how it got there."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from nc2ice.access import Access, normalize_url
from nc2ice.commit import BRANCH, open_repository
from nc2ice.steps import quiet_libraries
from nc2ice.validate import open_store_dataset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nc2ice", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="print a store's dataset and its commit history")
    show.add_argument("store", help="a local folder or s3://bucket/prefix/name.icechunk")
    show.add_argument("--configfile", help="the workflow config (for s3 endpoints)")
    args = parser.parse_args(argv)
    quiet_libraries()
    config = yaml.safe_load(Path(args.configfile).read_text()) if args.configfile else {}
    access = Access.from_config(config)
    store = normalize_url(args.store)
    print(open_store_dataset(store, access))
    print(f"\nhistory of {BRANCH!r}:")
    for snapshot in open_repository(store, access).ancestry(branch=BRANCH):
        print(f"  {snapshot.id}  {snapshot.written_at:%Y-%m-%d %H:%M}  {snapshot.message}")
