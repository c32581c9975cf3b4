"""An Icechunk repository as nc2ice writes it: where it may be created (only where nothing is
yet), opened with every container it records, written by one local writer at a time, and
asked what its history holds.  Nothing here removes anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import icechunk

from nc2ice.access import Access, local_path
from nc2ice.combine.plan import Plan
from nc2ice.errors import CommitError

log = logging.getLogger(__name__)
BRANCH = "main"
LOCK_FILE = "nc2ice.lock"
LOCK_POLL_S = 0.02  # how often a writer waiting for the store's lock tries again
FAILED_TAG = "nc2ice-failed-"  # + the id of a snapshot that failed validation
CREATION_WAIT_S = 20  # how long a run waits for another run's creation of its repository
CONFIG_TRIES = 5  # saves of the repository's config when runs add containers at once
LOCK_WAIT_S = 3600  # how long a commit to a local store waits for another one to finish
SHARD_REFERENCES = 500_000  # references per manifest shard: a reader loads only those it needs
ICECHUNK_LAYOUT = {"config.yaml", "refs", "snapshots", "manifests", "chunks", "transactions"}


def is_repository(store_url: str, access: Access) -> bool:
    """Whether an Icechunk repository is at ``store_url``, without creating anything there
    (Icechunk's local storage creates its folder just to look)."""
    if store_url.startswith("file://") and not local_path(store_url).is_dir():
        return False
    return icechunk.Repository.exists(access.storage(store_url))


def open_repository(store_url: str, access: Access) -> icechunk.Repository:
    """Open a repository with read access to every container it records, as a reader does:
    a new handle, which reads every snapshot and manifest from storage (validation reads
    what was stored, not what this process remembers writing)."""
    storage, prefixes = _existing(store_url, access)
    return _reader(storage, access, prefixes)


def kept_repository(store_url: str, access: Access) -> icechunk.Repository:
    """The handle this process keeps for the repository (see ``_Kept``): for writing and
    for the bookkeeping around a commit (publishing, the index), never for validation."""
    storage, prefixes = _existing(store_url, access)
    if (kept := _KEPT.get(store_url)) and kept.serves(access, prefixes):
        return kept.repo
    repo = _reader(storage, access, prefixes)
    _keep(store_url, _Kept(repo, access, prefixes))
    return repo


def _existing(store_url: str, access: Access) -> tuple[icechunk.Storage, set[str]]:
    """The repository's storage and the containers its config records; FileNotFoundError
    where there is no repository (nothing is created to look)."""
    if not is_repository(store_url, access):
        raise FileNotFoundError(f"{store_url}: no Icechunk repository here")
    storage = access.storage(store_url)
    return storage, _containers(storage)


def _containers(storage: icechunk.Storage) -> set[str]:
    return set(icechunk.Repository.open(storage).config.virtual_chunk_containers or {})


def _reader(storage: icechunk.Storage, access: Access, prefixes: set[str]) -> icechunk.Repository:
    authorized = access.authorize(sorted(prefixes))
    return icechunk.Repository.open(storage, authorize_virtual_chunk_access=authorized)


@dataclass
class _Kept:
    """A repository handle kept for the next commit: Icechunk keeps the snapshots a handle
    has read or written in memory, and reading one again from storage costs 50 ms at a
    thousand datasets (a commit, its publishing and its index entry look at the same few
    snapshots).  Snapshots never change; branches and tags are read from storage at every
    lookup, so a kept handle sees other runs' commits; a container another run records
    makes a new handle."""

    repo: icechunk.Repository
    access: Access
    prefixes: set[str]  # the containers it may read, as the repository's config had them
    splitting: str | None = None  # how its commits split manifests (None: a reader's)

    def serves(self, access: Access, prefixes: set[str], splitting: str | None = None) -> bool:
        same = self.access == access and self.prefixes == prefixes
        return same and (splitting is None or splitting == self.splitting)


_KEPT: dict[str, _Kept] = {}  # store URL -> its handle, the most recently kept last
KEPT_STORES = 4  # handles kept at once: each holds up to its cache's worth of snapshots
# a writer's cache (a reader's is Icechunk's default, to keep the stored config as it is)
KEPT_CACHE = icechunk.CachingConfig(num_snapshot_nodes=200_000, num_chunk_refs=1_000_000)


def _keep(store_url: str, kept: _Kept) -> None:
    _KEPT.pop(store_url, None)
    _KEPT[store_url] = kept
    while len(_KEPT) > KEPT_STORES:
        _KEPT.pop(next(iter(_KEPT)))


def last_commit(
    repo: icechunk.Repository, dataset: str, snapshot: str, group: str = ""
) -> tuple[str, dict[str, Any]] | None:
    """The latest snapshot in the ancestry of ``snapshot`` that committed ``dataset``.

    In a repository shared by datasets (``group`` is the dataset's) there is none where
    ``snapshot`` has no such group, and the walk back stops at the newest commit of the
    index (``nc2ice.store.contents``), which names every dataset's last commit before it: a
    walk through thousands of other datasets' commits would make each commit slower than
    the last."""
    if group and group_at(repo, snapshot, group) is None:
        return None
    for info in repo.ancestry(snapshot_id=snapshot):
        metadata = dict(info.metadata or {})
        # the dataset in this group: one that moved to another group is new there
        if metadata.get("dataset") == dataset and metadata.get("group", "") == group:
            return info.id, metadata
        if INDEX_COMMIT in metadata:
            entry = index_at(repo, info.id).get(group) or {}
            if entry.get("dataset") != dataset:
                return None
            found = dict(repo.lookup_snapshot(entry["snapshot"]).metadata or {})
            return (entry["snapshot"], found) if found.get("group", "") == group else None
    return None


def tag_of(repo: icechunk.Repository, name: str, branch: bool = False) -> str | None:
    """The snapshot a tag (or branch) names, None if there is none: one lookup, where listing
    every tag grows with each publish (a collection makes thousands)."""
    try:
        return repo.lookup_branch(name) if branch else repo.lookup_tag(name)
    except icechunk.IcechunkError as exc:
        if "ref not found" in str(exc):
            return None
        raise


@functools.lru_cache(maxsize=16)
def snapshot_store(repo: icechunk.Repository, snapshot: str) -> icechunk.IcechunkStore:
    """A read-only store at ``snapshot``, shared by every look at it in this process: a
    snapshot never changes, and a session's first read costs ten times its later ones (a
    commit in a collection looks at its base several times)."""
    return repo.readonly_session(snapshot_id=snapshot).store


def group_at(repo: icechunk.Repository, snapshot: str, group: str = "") -> Any:
    """The Zarr group at ``group`` in ``snapshot``, None where there is none."""
    import zarr

    try:
        return zarr.open_group(
            snapshot_store(repo, snapshot),
            path=group or None,
            mode="r",
            zarr_format=3,
            use_consolidated=False,  # Icechunk never consolidates: do not look for it
        )
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        return None


INDEX = "nc2ice_datasets"  # the root's attribute: group path -> its dataset's entry
INDEX_COMMIT = "nc2ice_index"  # in the metadata of a commit that wrote the index


def index_at(repo: icechunk.Repository, snapshot: str) -> dict[str, Any]:
    """The index as ``snapshot`` has it (empty where there is none)."""
    root = group_at(repo, snapshot)
    return dict(root.attrs.get(INDEX) or {}) if root is not None else {}


# -- what changed ---------------------------------------------------------------------------


def ensure_repository(store_url: str, access: Access, prefixes: list[str]) -> None:
    """Create a repository where nothing is yet; refuse a location that holds anything else."""
    if is_repository(store_url, access):
        return
    if _refuse_if_occupied(store_url, access):
        return  # another run's repository, whose creation finished meanwhile
    config = access.repository_config(prefixes)
    try:
        if store_url.startswith("file://"):
            _create_local(local_path(store_url), config)
        else:
            icechunk.Repository.create(access.storage(store_url), config=config)
    except icechunk.IcechunkError:
        if not _repository_soon(store_url, access):  # else: another run created it meanwhile
            raise
    log.info("%s: a new Icechunk repository", store_url)


def _repository_soon(store_url: str, access: Access, wait_s: float = CREATION_WAIT_S) -> bool:
    """Whether a repository another run is creating here appears within ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        if is_repository(store_url, access):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def _create_local(path: Path, config: icechunk.RepositoryConfig) -> None:
    """Create a local repository where nothing is: in a folder of its own beside its place,
    renamed into place, so that a creation that fails half way (a full disk) leaves nothing
    where the store goes; in place in an empty folder that is there already (a mount point,
    a folder made for it: it cannot be renamed onto)."""
    if path.is_dir():
        icechunk.Repository.create(icechunk.local_filesystem_storage(str(path)), config=config)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    work = path.parent / f".{path.name}.creating-{uuid.uuid4().hex[:8]}"
    try:
        icechunk.Repository.create(icechunk.local_filesystem_storage(str(work)), config=config)
        try:
            os.rename(work, path)  # onto nothing
        except OSError:
            if not (path / "refs").is_dir():  # else: another run's creation won the rename
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)  # ours alone: its name is unique


def open_for_writing(
    store_url: str, access: Access, prefixes: list[str], plan: Plan, locked: bool = False
):
    """Open a repository with a container for each of ``prefixes`` (and those it had), its
    manifests split along the concatenation dimension; ``locked``: the caller holds the
    store's lock."""
    storage = access.storage(store_url)
    splitting = _splitting(plan)
    for attempt in range(CONFIG_TRIES):
        had = _containers(storage)
        # a folder inside one a container covers already needs none of its own: a collection
        # of a thousand folders would otherwise make a thousand containers
        new = {p for p in prefixes if not any(p.startswith(h) for h in had)}
        every = new | had
        kept = _KEPT.get(store_url)
        if not new and kept and kept.serves(access, every, repr(splitting)):
            return kept.repo
        config = access.repository_config(sorted(every))
        if splitting is not None:
            config.manifest = icechunk.ManifestConfig(splitting=splitting)
        if new and not _saved(store_url, storage, config, had, locked):
            time.sleep(0.2 * (attempt + 1))  # another run saved it meanwhile: merge again
            continue
        config.caching = KEPT_CACHE  # this process's memory, not the readers': not saved
        repo = icechunk.Repository.open(
            storage, config=config, authorize_virtual_chunk_access=access.authorize(sorted(every))
        )
        _keep(store_url, _Kept(repo, access, every, repr(splitting)))
        return repo
    raise AssertionError("unreachable")


def _saved(
    store_url: str,
    storage: icechunk.Storage,
    config: icechunk.RepositoryConfig,
    had: set[str],
    locked: bool,
) -> bool:
    """Save ``config`` (its new containers) unless another run changed the containers since
    they were read as ``had``: readers find the containers in the repository itself.  Saving
    is no atomic write on a local disk, so it takes the store's lock (a commit that adds no
    container takes none)."""
    with contextlib.nullcontext() if locked else store_lock(store_url):
        if _containers(storage) != had:
            return False
        try:
            icechunk.Repository.open(storage, config=config).save_config()
        except icechunk.IcechunkError as exc:
            if "updated" not in str(exc):
                raise
            return False
    return True


def _refuse_if_occupied(store_url: str, access: Access) -> bool:
    """A location that holds anything but an Icechunk repository is someone else's.  One
    that holds only Icechunk's own layout is a repository being created by another run (True
    once it is there), or one whose creation was killed half way (refused, saying so)."""
    found = access.list_location(store_url, limit=4)
    if not found:
        return False
    shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
    if {name.split("/")[0] for name in found} <= ICECHUNK_LAYOUT:
        if _repository_soon(store_url, access):
            return True
        raise CommitError(
            f"{store_url}: an Icechunk repository whose creation did not finish (it holds "
            f"{shown}, but no branch): a run creating it was stopped. If no other run is "
            "creating it now, remove it and run again"
        )
    raise CommitError(
        f"{store_url}: not an Icechunk repository, and not empty (it holds {shown}): nc2ice "
        "creates a repository only where nothing is yet, and never removes what it did not "
        "write. Choose another store.root or store.repository"
    )


def _splitting(plan: Plan) -> icechunk.ManifestSplittingConfig | None:
    """Manifest shards of about SHARD_REFERENCES along the concatenation dimension."""
    virtual = [a for a in plan.arrays.values() if a.axis is not None and a.data is None]
    if not virtual:
        return None
    per_step = max(
        math.prod(math.ceil(s / c) for s, c in zip(a.shape[1:], a.chunks[1:])) for a in virtual
    )
    dim = virtual[0].template.dims[0]
    size = max(1, SHARD_REFERENCES // max(1, per_step))
    return icechunk.ManifestSplittingConfig.from_dict(
        {
            icechunk.ManifestSplitCondition.AnyArray(): {
                icechunk.ManifestSplitDimCondition.DimensionName(f"^{dim}$"): size
            }
        }
    )


def touched(repo: icechunk.Repository, since: str, until: str, group: str) -> list[str]:
    """The paths of the dataset's group that commits after ``since`` up to ``until``
    changed (IcechunkError where ``until`` does not descend from ``since``)."""
    diff = repo.diff(from_snapshot_id=since, to_snapshot_id=until)
    paths = {
        *diff.new_groups,
        *diff.new_arrays,
        *diff.deleted_groups,
        *diff.deleted_arrays,
        *diff.updated_groups,
        *diff.updated_arrays,
        *diff.updated_chunks,
    }
    # A dataset with a repository of its own (no group) owns everything in it.
    return sorted(p for p in paths if not group or f"{p}/".startswith(f"/{group}/"))


@contextlib.contextmanager
def store_lock(store_url: str, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Icechunk's local storage is not safe for two commits at once: the second waits.
    The lock is a file inside the repository's folder (nothing is written beside it)."""
    if not store_url.startswith("file://"):
        yield
        return
    lock = local_path(store_url) / LOCK_FILE
    with lock.open("a") as handle:
        deadline, said, pause = time.monotonic() + wait_s, False, 0.005
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise CommitError(
                        f"{store_url}: another run has been writing to this store for over "
                        f"{wait_s / 60:.0f} minutes; a store on a local filesystem takes one "
                        "writer at a time: run again later, or keep the store on S3"
                    ) from None
                if not said:
                    log.info("%s: another run is writing to this store; waiting for it", store_url)
                    said = True
                # short waits: the other writer (often another bundle of the same run)
                # holds it a fraction of a second at a time, and a long sleep misses its gaps
                time.sleep(pause)
                pause = min(LOCK_POLL_S, pause * 2)
            except OSError:  # a filesystem without locks (some Lustre mounts): go on
                break
        yield
