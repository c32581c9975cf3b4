"""The index of a repository shared by datasets: the root group's ``nc2ice_datasets``
attribute lists each dataset's group path, its time range, file count and the validated
snapshot that last changed it, so a reader finds what is there without walking the tree.

Each publish writes its dataset's entry in a commit of its own on ``main``, right after
``main`` moved to the validated snapshot.  That commit changes the root group's attributes
and nothing else (checked before it is written): it is the one commit on ``main`` that no
validation read, and it holds no value of any dataset.  Two runs writing the index at once
conflict on the root's attributes; the later one reads the index again and retries.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import icechunk
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from nc2ice.errors import CommitError
from nc2ice.store.repository import BRANCH, INDEX, INDEX_COMMIT, index_at, snapshot_store

log = logging.getLogger(__name__)
TRIES = 20


def index_entry(repo: icechunk.Repository, published: dict[str, Any], concat_dim: str | None):
    """What the index says of a dataset just published: read from its group on ``main``."""
    ds = xr.open_zarr(  # no index built: only the range of one coordinate is read
        snapshot_store(repo, published["snapshot"]),
        group=published["group"],
        consolidated=False,
        chunks=None,
        create_default_indexes=False,
    )
    dim = concat_dim if concat_dim in ds.coords else ("time" if "time" in ds.coords else None)
    entry = {
        "dataset": published["dataset"],
        "snapshot": published["snapshot"],
        "validated_snapshot": published["validated_snapshot"],
        "variables": sorted(str(v) for v in ds.data_vars),
        "files": published.get("files"),
        "published": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if dim is not None and ds[dim].size:
        entry["dimension"] = dim
        entry["range"] = [_text(ds[dim].values[0]), _text(ds[dim].values[-1])]
    return entry


def write_index(repo: icechunk.Repository, entries: dict[str, dict[str, Any]]) -> str | None:
    """Put ``entries`` (group path -> entry) in the index on ``main``, with every dataset
    commit since the index was last written (a run killed between its publish and its
    index); the new snapshot, or None if the index said so already."""
    names = sorted(e["dataset"] for e in entries.values())
    for _ in range(TRIES):
        session = repo.writable_session(BRANCH)
        root = zarr.open_group(session.store, mode="r+", zarr_format=3)
        index = dict(root.attrs.get(INDEX) or {})
        newest = _newest_commits(repo, session.snapshot_id, index)
        new = {**_caught_up(newest, index), **_current(entries, newest, index)}
        if all(_same(index.get(g), e) for g, e in new.items()):
            return None
        root.attrs[INDEX] = dict(sorted({**index, **new}.items()))
        _only_the_root(session)
        try:
            return session.commit(
                f"index: {_listed(names)} listed",
                metadata={INDEX_COMMIT: _listed(names)},
            )
        except icechunk.ConflictError:
            continue  # another dataset's index entry or commit landed first: read it again
    raise CommitError(f"{_listed(names)}: main kept moving; the index was not updated")


def read_index(repo: icechunk.Repository, snapshot: str | None = None) -> dict[str, Any]:
    """The index as ``main`` (or ``snapshot``) has it: group path -> entry."""
    return index_at(repo, snapshot or repo.lookup_branch(BRANCH))


def _newest_commits(repo: icechunk.Repository, tip: str, index: dict[str, Any]) -> dict:
    """Each group's newest dataset commit after the index's last commit (all of them, the
    first time): group -> (dataset, snapshot)."""
    found: dict[str, tuple[str, str]] = {}
    for info in repo.ancestry(snapshot_id=tip):
        metadata = dict(info.metadata or {})
        if INDEX_COMMIT in metadata and index:
            break
        group = metadata.get("group")
        if "dataset" in metadata and group and group not in found:
            found[group] = (metadata["dataset"], info.id)
    return found


def _caught_up(newest: dict, index: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Entries for the groups whose entry does not name their newest commit (a run killed
    between its publish and its index)."""
    return {
        g: {"dataset": dataset, "snapshot": snapshot}
        for g, (dataset, snapshot) in newest.items()
        if (index.get(g) or {}).get("snapshot") != snapshot
    }


def _current(entries: dict, newest: dict, index: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The entries that still name their group's newest commit: one another run replaced
    meanwhile is left as that run wrote it (an index never goes back)."""
    out = {}
    for group, entry in entries.items():
        latest = newest[group][1] if group in newest else (index.get(group) or {}).get("snapshot")
        if latest in (None, entry["snapshot"]):
            out[group] = entry
        else:
            log.info(
                "%s: not indexed at %s: %s is newer", entry["dataset"], entry["snapshot"], latest
            )
    return out


def _same(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    drop = ("published",)
    return old is not None and {k: v for k, v in old.items() if k not in drop} == {
        k: v for k, v in new.items() if k not in drop
    }


def _listed(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _only_the_root(session: icechunk.Session) -> None:
    """The index's commit changes the root's attributes, nothing of any dataset."""
    diff = session.status()
    other = {
        *diff.new_groups,
        *diff.new_arrays,
        *diff.deleted_groups,
        *diff.deleted_arrays,
        *diff.updated_arrays,
        *diff.updated_chunks,
        *(g for g in diff.updated_groups if g != "/"),
    }
    if other:
        raise CommitError(f"the index's commit would change {sorted(other)[:3]}: not written")


def _text(value: Any) -> str:
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).isoformat()
    return str(value.isoformat() if hasattr(value, "isoformat") else value)
