"""Committing a plan to Icechunk, and publishing it once it is validated.

A commit never moves ``main``: it writes the dataset's new state as one snapshot on a branch
of its own (``nc2ice-<dataset>-<UTC time>-<id>``), based on the snapshot ``main`` pointed at.
Validation reads that snapshot; only when it passed does ``publish`` move ``main`` to it, with a
compare-and-swap, and tag it.  Readers of ``main`` therefore only ever see validated snapshots.

What a commit writes, compared with the dataset's last commit on ``main``:

- nothing changed (the inputs' digest equals the last commit's): no snapshot;
- new files after the last ones, the rest unchanged: an append; the arrays grow and only their
  new chunks (and a last chunk the old end shared) are written;
- anything else (a file changed, dropped or inserted, a setting or a variable's structure
  changed): the dataset is rewritten in one snapshot, and the log says which file forced it.

Nothing a run did not create is ever removed: a location that holds anything but an Icechunk
repository is refused before any write, a failed commit deletes only its own branch, and a
repository is never deleted.  If ``main`` moved while a snapshot was validated, ``publish``
writes the same change again on top of it when the other commits touched other groups
(another dataset of a shared repository), and refuses, naming them, otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import icechunk
import zarr

from nc2ice.access import Access, local_path
from nc2ice.chunks import read_region
from nc2ice.combine import ArrayPlan, Plan
from nc2ice.config import store_settings
from nc2ice.errors import CommitError
from nc2ice.faults import pause
from nc2ice.writer import (
    PART_REFERENCES,
    Writer,
    create_array,
    layout,
    nonfinite_attributes,
    store_attrs,
    write_copies,
    write_references,
)

log = logging.getLogger(__name__)
BRANCH = "main"
PACKAGES = ("nc2ice", "virtualizarr", "icechunk", "zarr", "xarray", "obstore", "h5py", "snakemake")
SHARD_REFERENCES = 500_000  # references per manifest shard: a reader loads only those it needs
LOCK_FILE = "nc2ice.lock"
FAILED_TAG = "nc2ice-failed-"  # + the id of a snapshot that failed validation
CREATION_WAIT_S = 20  # how long a run waits for another run's creation of its repository
CONFIG_TRIES = 5  # saves of the repository's config when runs add containers at once
LOCK_WAIT_S = 3600  # how long a commit to a local store waits for another one to finish
PUBLISH_TRIES = 5  # how often publishing writes its change again on a main that moved


def package_versions() -> dict[str, str]:
    return {name: version(name) for name in PACKAGES}


def input_digest(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def is_repository(store_url: str, access: Access) -> bool:
    """Whether an Icechunk repository is at ``store_url``, without creating anything there
    (Icechunk's local storage creates its folder just to look)."""
    if store_url.startswith("file://") and not local_path(store_url).is_dir():
        return False
    return icechunk.Repository.exists(access.storage(store_url))


def open_repository(store_url: str, access: Access) -> icechunk.Repository:
    """Open a repository with read access to every container it records."""
    if not is_repository(store_url, access):
        raise FileNotFoundError(f"{store_url}: no Icechunk repository here")
    storage = access.storage(store_url)
    prefixes = list(icechunk.Repository.open(storage).config.virtual_chunk_containers or {})
    return icechunk.Repository.open(
        storage, authorize_virtual_chunk_access=access.authorize(prefixes)
    )


def last_commit(
    repo: icechunk.Repository, dataset: str, snapshot: str
) -> tuple[str, dict[str, Any]] | None:
    """The latest snapshot in the ancestry of ``snapshot`` that committed ``dataset``."""
    for info in repo.ancestry(snapshot_id=snapshot):
        metadata = dict(info.metadata or {})
        if metadata.get("dataset") == dataset:
            return info.id, metadata
    return None


# -- what changed ---------------------------------------------------------------------------


@dataclass
class Change:
    action: str  # "unchanged", "created", "appended", "rewritten"
    why: str = ""  # what forced a rewrite
    appended: list[str] = field(default_factory=list)
    rescanned: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    steps: int = 0  # appended along the concatenation dimension
    start: dict[str, int] = field(default_factory=dict)  # appends: each array's old length

    def summary(self) -> str:
        if self.action == "appended":
            return f"appended {len(self.appended)} file(s) ({self.steps} steps)"
        if self.action == "rewritten":
            counts = f"{len(self.appended)} new, {len(self.rescanned)} rescanned, "
            return f"rewritten because {self.why} ({counts}{len(self.dropped)} dropped)"
        return self.action

    def record(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "summary": self.summary(),
            "appended": self.appended,
            "rescanned": self.rescanned,
            "dropped": self.dropped,
        }


def decide(plan: Plan, metadata: dict[str, Any], previous: dict[str, Any] | None, stored) -> Change:
    """Compare a plan with the dataset's last commit (its metadata, and ``stored``: the
    committed arrays' metadata by path, or None when the dataset has no arrays yet)."""
    if previous is None:
        return Change("created", appended=list(plan.files))
    if previous.get("input_digest") == metadata["input_digest"]:
        return Change("unchanged")
    before = list(previous.get("order", []))
    old = {f: s.get("manifest_sha256") for f, s in previous.get("sources", {}).items()}
    new = {f: s["manifest_sha256"] for f, s in metadata["sources"].items()}
    change = Change(
        "rewritten",
        appended=[f for f in plan.files if f not in old],
        rescanned=[f for f in before if f in new and new[f] != old.get(f)],
        dropped=[f for f in before if f not in new],
    )
    change.why = _why_rewrite(plan, metadata, previous, before, change) or ""
    if not change.why:
        change.why = _why_not_appendable(plan, stored, change) or ""
    if not change.why and not change.appended:  # same files, recorded otherwise
        change.why = "the inputs' digest changed"
    if not change.why:
        change.action = "appended"
    return change


def _why_rewrite(plan, metadata, previous, before: list[str], change: Change) -> str | None:
    # Settings that do not decide the content (older commits recorded them all) are ignored.
    was, now = store_settings(previous.get("config", {})), store_settings(metadata["config"])
    if was != now:
        keys = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
        return f"the dataset's settings changed ({', '.join(keys)})"
    if change.rescanned:
        return f"{change.rescanned[0]} changed since the last commit (rescanned)"
    if change.dropped:
        return f"{change.dropped[0]} is no longer a source"
    if plan.files[: len(before)] != before:
        inside = next(f for f, b in zip(plan.files, before, strict=False) if f != b)
        return f"{inside} is new and falls inside the range already committed"
    return None


def _why_not_appendable(plan: Plan, stored: dict[str, dict] | None, change: Change) -> str | None:
    """Appending keeps every committed chunk; it needs every array as it was, but longer."""
    if stored is None:
        return "the store holds no arrays for the dataset"
    if set(stored) != set(plan.arrays):
        added = sorted(set(plan.arrays) - set(stored)) or sorted(set(stored) - set(plan.arrays))
        return f"the variables changed ({', '.join(added)})"
    for path, array in plan.arrays.items():
        before, now = dict(stored[path]), _would_be(array)
        old_shape, new_shape = before.pop("shape"), now.pop("shape")
        if array.data is not None:  # values: an append keeps the chunks they have
            before.pop("chunk_grid"), now.pop("chunk_grid")
        if before != now:
            return f"{path!r} is stored differently now (chunks, codecs, type or attributes)"
        if array.axis is None and old_shape != new_shape:
            return f"{path!r} changed its shape"
        if array.axis is not None:
            if old_shape[1:] != new_shape[1:] or new_shape[0] < old_shape[0]:
                return f"{path!r} changed its shape"
            change.start[path] = old_shape[0]
            change.steps = max(change.steps, new_shape[0] - old_shape[0])
    return None


def unchanged_files(plan: Plan, metadata, previous, stored, change: Change) -> list[str]:
    """The files whose piece of the store the new snapshot holds exactly as the dataset's
    last snapshot on main did (which passed validation): validation may take them on trust.

    An append keeps every old chunk but the one the old end shared; a rewrite keeps a file's
    piece when its manifest, its place along the dimension and every array's layout are as
    they were (the same plan for the same inputs writes the same references)."""
    if previous is None:
        return []
    if change.action == "unchanged":
        return list(plan.files)
    extents = metadata.get("extents", {})
    if change.action == "appended":
        ends = [
            _first_chunk(a, change) * a.chunks[0]
            for a in plan.arrays.values()
            if a.axis is not None and a.data is None
        ]
        rewritten_from = min(ends, default=math.inf)
        old = [f for f in plan.files if f not in change.appended]
        return [f for f in old if sum(extents.get(f, [0, math.inf])) <= rewritten_from]
    before = previous.get("extents", {})
    if stored is None or not _same_layout(plan, stored):
        return []
    digests = {f: s.get("manifest_sha256") for f, s in previous.get("sources", {}).items()}
    return [
        f
        for f in plan.files
        if f in before
        and before[f] == extents.get(f)
        and digests.get(f) == metadata["sources"][f]["manifest_sha256"]
    ]


def _same_layout(plan: Plan, stored: dict[str, dict]) -> bool:
    """Whether every array keeps its chunks, codecs, type and attributes (shapes aside)."""
    if set(stored) != set(plan.arrays):
        return False
    for path, array in plan.arrays.items():
        before, now = dict(stored[path]), _would_be(array)
        for key in ("shape", "chunk_grid") if array.data is not None else ("shape",):
            before.pop(key), now.pop(key)
        if before != now:
            return False
    return True


def _would_be(array: ArrayPlan) -> dict[str, Any]:
    """The Zarr metadata the array gets, from a throwaway in-memory store."""
    root = zarr.open_group(zarr.storage.MemoryStore(), mode="w", zarr_format=3)
    return dict(create_array(root, array, layout(array)).metadata.to_dict())


def stored_arrays(repo: icechunk.Repository, group: str, snapshot: str) -> dict[str, dict] | None:
    """The arrays of a dataset's group in ``snapshot``: their metadata by path."""
    store = repo.readonly_session(snapshot_id=snapshot).store
    try:
        root = zarr.open_group(store, path=group or None, mode="r", zarr_format=3)
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return None
    found = {}
    for path, array in root.members(max_depth=None):
        if isinstance(array, zarr.Array):
            found[path] = dict(array.metadata.to_dict())
    return found or None


# -- committing: a snapshot on a branch of its own ---------------------------------------------


@dataclass
class Outcome:
    snapshot: str  # the snapshot to validate (the dataset's last one on main if unchanged)
    new: bool
    change: Change
    base: str = ""  # what main pointed at when the snapshot was written
    branch: str | None = None  # where the snapshot waits for validation
    tag: str | None = None  # the tag publishing gives it
    parts: int = 0
    # files whose piece of the store is as the dataset's last validated snapshot had it
    trusted: list[str] = field(default_factory=list)
    trusted_from: str | None = None


def commit_plan(
    plan: Plan,
    *,
    store_url: str,
    access: Access,
    prefixes: list[str],
    **options: Any,
) -> Outcome:
    """Write ``plan`` as the dataset's new state on a branch of its own (see ``commit_to``),
    creating the repository where nothing is yet."""
    for array in plan.arrays.values():  # a codec no reader has fails here, before any write
        layout(array)
    ensure_repository(store_url, access, prefixes)
    with store_lock(store_url):
        repo = open_for_writing(store_url, access, prefixes, plan)
        return commit_to(repo, plan, access=access, store_url=store_url, **options)


def commit_to(
    repo: icechunk.Repository,
    plan: Plan,
    *,
    dataset: str,
    group: str,
    access: Access,
    metadata: dict[str, Any],
    checksums: dict[str, str | datetime],
    part_references: int = PART_REFERENCES,
    base: str | None = None,
    store_url: str = "",
) -> Outcome:
    """Write ``plan`` on a branch of its own, based on ``base`` (default: where ``main``
    points now); ``main`` does not move (see ``publish``)."""
    write = _Write(repo, plan, dataset, group, access, checksums, part_references, store_url)
    return write.snapshot(metadata, base or repo.lookup_branch(BRANCH))


@dataclass
class _Write:
    repo: icechunk.Repository
    plan: Plan
    dataset: str
    group: str
    access: Access
    checksums: dict[str, str | datetime]
    part_references: int
    store_url: str = ""

    def snapshot(self, metadata: dict[str, Any], base: str) -> Outcome:
        found = last_commit(self.repo, self.dataset, base)
        if found is None:
            _refuse_if_not_ours(self.repo, base, self.group, self.dataset, self.store_url)
        previous = found[1] if found else None
        stored = stored_arrays(self.repo, self.group, base) if found else None
        change = decide(self.plan, metadata, previous, stored)
        trusted = unchanged_files(self.plan, metadata, previous, stored, change)
        since = found[0] if found else None
        if since is not None and since != base and _touched(self.repo, since, base, self.group):
            log.info(
                "%s: commits after snapshot %s changed the dataset's arrays: the validation "
                "compares every file",
                self.dataset,
                since,
            )
            trusted = []
        if change.action == "unchanged":
            log.info(
                "%s: the store holds these inputs already (snapshot %s)", self.dataset, found[0]
            )
            return Outcome(found[0], False, change, base=base, trusted=trusted, trusted_from=since)
        metadata = {**metadata, "group": self.group, "change": change.record(), "base": base}
        tag = f"{self.dataset}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{metadata['input_digest'][:8]}"
        kept = waiting_snapshot(self.repo, self.dataset, metadata["input_digest"], base)
        if kept is not None:  # a run killed after writing it: validate that one
            branch, snapshot = kept
            log.info(
                "%s: snapshot %s on branch %s already holds this change",
                self.dataset,
                snapshot,
                branch,
            )
            return Outcome(snapshot, True, change, base, branch, tag, 0, trusted, since)
        branch = f"nc2ice-{self.dataset}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        self.repo.create_branch(branch, base)
        try:
            writer = Writer(
                self.repo, branch, self.part_references, f"{self.dataset} {change.action}"
            )
            self._write(writer, change)
            pause("commit:written")
            message = f"{self.dataset}: {change.summary()}: {len(self.plan.files)} files"
            snapshot = writer.commit(message, metadata)
        except BaseException:
            with contextlib.suppress(Exception):  # ours alone: nobody else writes to it
                self.repo.delete_branch(branch)
            raise
        log.info(
            "%s: %s; snapshot %s written to branch %s, to be validated",
            self.dataset,
            change.summary(),
            snapshot,
            branch,
        )
        return Outcome(snapshot, True, change, base, branch, tag, len(writer.parts), trusted, since)

    def _write(self, writer: Writer, change: Change) -> None:
        plan, group = self.plan, self.group
        reader = lambda var, region: read_region(var, region, self.access)  # noqa: E731
        if change.action == "appended":
            _append(writer, plan, group, change, self.checksums, reader)
            return
        zarr.open_group(writer.store, mode="a", zarr_format=3)  # the root, if new
        root = zarr.open_group(writer.store, path=group or None, mode="w", zarr_format=3)
        for name, attrs in plan.group_attrs.items():
            target = root.require_group(name) if name else root
            target.attrs.update(store_attrs(attrs))
        for path, array in plan.arrays.items():
            # the writer's session changes when it commits a part: open the group in this one
            root = zarr.open_group(writer.store, path=group or None, mode="r+", zarr_format=3)
            zarray = create_array(root, array, layout(array))
            if array.data is not None:
                zarray[...] = array.data
                continue
            where = _join(group, path)
            write_references(writer, where, array.refs, self.checksums)
            write_copies(writer, where, array, reader)


def _refuse_if_not_ours(
    repo: icechunk.Repository, base: str, group: str, dataset: str, store_url: str
) -> None:
    """A repository (or, in a shared one, a group) that holds anything nc2ice did not commit
    for this dataset is someone else's: never overwritten."""
    store = repo.readonly_session(snapshot_id=base).store
    try:
        node = zarr.open_group(store, path=group or None, mode="r", zarr_format=3)
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return
    held = sorted(name for name, _ in node.members())
    if not held:
        return
    where = f"{store_url}: group {group!r}" if group else f"{store_url}: the repository"
    shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
    raise CommitError(
        f"{where} already holds {shown}, which no commit of "
        f"dataset {dataset!r} by nc2ice wrote: it is someone else's, and nc2ice never "
        "overwrites what it did not write. Choose another store.root or store.repository (or "
        "another dataset name in a shared repository)"
    )


def waiting_snapshot(
    repo: icechunk.Repository, dataset: str, digest: str, base: str
) -> tuple[str, str] | None:
    """A branch of an earlier run of ``dataset`` whose snapshot holds the same inputs on the
    same base: (branch, snapshot), or None."""
    failed = {t.removeprefix(FAILED_TAG) for t in repo.list_tags() if t.startswith(FAILED_TAG)}
    for branch in sorted(repo.list_branches()):
        if not branch.startswith(f"nc2ice-{dataset}-"):
            continue
        info = repo.lookup_snapshot(repo.lookup_branch(branch))
        metadata = dict(info.metadata or {})
        if info.id in failed or metadata.get("dataset") != dataset:
            continue  # a snapshot that failed validation is never offered again
        if metadata.get("input_digest") == digest and metadata.get("base") == base:
            return branch, info.id
    return None


def mark_failed(repo: icechunk.Repository, snapshot: str) -> None:
    """Remember that ``snapshot`` failed validation (a tag: its branch keeps its name)."""
    if f"{FAILED_TAG}{snapshot}" not in repo.list_tags():
        repo.create_tag(f"{FAILED_TAG}{snapshot}", snapshot)


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


def open_for_writing(store_url: str, access: Access, prefixes: list[str], plan: Plan):
    """Open a repository with a container for each of ``prefixes`` (and those it had), its
    manifests split along the concatenation dimension."""
    storage = access.storage(store_url)
    for attempt in range(CONFIG_TRIES):
        had = icechunk.Repository.open(storage).config.virtual_chunk_containers or {}
        every = sorted(set(prefixes) | set(had))
        config = access.repository_config(every)
        splitting = _splitting(plan)
        if splitting is not None:
            config.manifest = icechunk.ManifestConfig(splitting=splitting)
        repo = icechunk.Repository.open(
            storage, config=config, authorize_virtual_chunk_access=access.authorize(every)
        )
        if set(every) == set(had):
            return repo
        try:
            repo.save_config()  # readers find the new containers in the repository itself
            return repo
        except icechunk.IcechunkError as exc:  # another run saved it meanwhile: merge again
            if "updated" not in str(exc) or attempt + 1 == CONFIG_TRIES:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


ICECHUNK_LAYOUT = {"config.yaml", "refs", "snapshots", "manifests", "chunks", "transactions"}


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


def _first_chunk(array: ArrayPlan, change: Change) -> int:
    """The first grid index an append writes: the chunk holding the old end onwards."""
    return change.start.get(array.path, 0) // array.chunks[0]


def _append(writer: Writer, plan: Plan, group: str, change: Change, checksums, reader) -> None:
    for path, array in plan.arrays.items():
        if array.axis is None:
            continue  # unchanged: it comes from the first file
        where = _join(group, path)
        zarray = zarr.open_array(writer.store, path=where, mode="r+", zarr_format=3)
        old = change.start[path]
        zarray.resize(array.shape)
        if array.data is not None:
            zarray[old:] = array.data[old:]
            continue
        first = _first_chunk(array, change)
        write_references(writer, where, array.refs, checksums, start=first)
        write_copies(writer, where, array, reader, start=first)


def _join(group: str, path: str) -> str:
    return f"{group}/{path}" if group else path


# -- publishing: main moves to a validated snapshot ----------------------------------------------


@dataclass
class Published:
    snapshot: str
    tag: str | None
    replayed: list[str] = field(default_factory=list)  # main tips the change was written onto


def publish(
    repo: icechunk.Repository,
    dataset: str,
    group: str,
    outcome: Outcome,
    rewrite: Callable[[str], Outcome],
) -> Published:
    """Move ``main`` from the commit's base to its validated snapshot, and tag it.

    If ``main`` moved meanwhile: commits that changed this dataset's group make it refuse,
    naming them; others (datasets in their own groups of a shared repository) are kept, and
    ``rewrite(tip)`` writes the same change again on top of them, which is then published."""
    done = Published(outcome.snapshot, outcome.tag)
    for _ in range(PUBLISH_TRIES):
        if _published(repo, outcome.snapshot):
            break
        try:
            repo.reset_branch(BRANCH, outcome.snapshot, from_snapshot_id=outcome.base)
            break
        except icechunk.IcechunkError:
            tip = repo.lookup_branch(BRANCH)
            same = _same_inputs_on(repo, dataset, outcome.snapshot, tip)
            if same is not None:  # another run published these very inputs meanwhile
                log.info("%s: main holds these inputs already (snapshot %s)", dataset, same)
                _drop_branch(repo, outcome.branch)
                return Published(same, None)
            _refuse_if_touched(repo, dataset, group, outcome, tip)
            log.info(
                "%s: main moved to %s (other datasets committed): writing this change "
                "again on top of it",
                dataset,
                tip,
            )
            _drop_branch(repo, outcome.branch)
            outcome = replace_base(rewrite(tip), outcome)
            done.replayed.append(tip)
    else:
        raise CommitError(f"{dataset}: main kept moving; nothing was published: run again")
    done.snapshot = outcome.snapshot
    done.tag = _tag(repo, outcome.tag, outcome.snapshot)
    _drop_branch(repo, outcome.branch)
    return done


def replace_base(new: Outcome, old: Outcome) -> Outcome:
    """A change written again on another base must be the same change."""
    if new.change.record() != old.change.record():
        raise CommitError(
            f"writing the change again gave another change ({new.change.summary()} instead of "
            f"{old.change.summary()}): run again"
        )
    new.tag = old.tag
    return new


def _same_inputs_on(repo: icechunk.Repository, dataset: str, snapshot: str, tip: str):
    """The dataset's last commit on ``tip`` if it holds the same inputs as ``snapshot``."""
    found = last_commit(repo, dataset, tip)
    digest = dict(repo.lookup_snapshot(snapshot).metadata or {}).get("input_digest")
    return found[0] if found and found[1].get("input_digest") == digest else None


def _published(repo: icechunk.Repository, snapshot: str, depth: int = 1000) -> bool:
    """Whether ``snapshot`` is on main already (a rerun after a kill)."""
    for n, info in enumerate(repo.ancestry(branch=BRANCH)):
        if info.id == snapshot:
            return True
        if n >= depth:
            break
    return False


def _touched(repo: icechunk.Repository, since: str, until: str, group: str) -> list[str]:
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


def _refuse_if_touched(repo, dataset: str, group: str, outcome: Outcome, tip: str) -> None:
    try:
        touched = _touched(repo, outcome.base, tip, group)
    except icechunk.IcechunkError:
        raise CommitError(
            f"{dataset}: main was moved to {tip}, which does not descend from {outcome.base} "
            f"(a rollback?); nothing was published. The validated snapshot {outcome.snapshot} "
            f"stays on branch {outcome.branch}: run again to commit on top of main"
        ) from None
    if not touched:
        return
    other = repo.lookup_snapshot(tip)
    raise CommitError(
        f"another run committed snapshot {tip} ({other.message!r}) to {BRANCH!r} while this "
        f"one was writing or validating, and it changed {dataset}'s arrays ({touched[0]}); "
        f"nothing of this run was published (its snapshot {outcome.snapshot} stays on branch "
        f"{outcome.branch}): run again to commit on top of it"
    )


def _drop_branch(repo: icechunk.Repository, branch: str | None) -> None:
    if branch and branch in repo.list_branches():
        repo.delete_branch(branch)


def _tag(repo: icechunk.Repository, tag: str | None, snapshot: str) -> str | None:
    if tag is None:
        return None
    if tag in repo.list_tags():
        if repo.lookup_tag(tag) == snapshot:  # a rerun after a kill made it already
            return tag
        tag = f"{tag}-{uuid.uuid4().hex[:4]}"
    repo.create_tag(tag, snapshot)
    return tag


# -- a local store takes one writer at a time ----------------------------------------------------


@contextlib.contextmanager
def store_lock(store_url: str, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Icechunk's local storage is not safe for two commits at once: the second waits.
    The lock is a file inside the repository's folder (nothing is written beside it)."""
    if not store_url.startswith("file://"):
        yield
        return
    lock = local_path(store_url) / LOCK_FILE
    with lock.open("a") as handle:
        deadline, said = time.monotonic() + wait_s, False
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
                time.sleep(0.5)
            except OSError:  # a filesystem without locks (some Lustre mounts): go on
                break
        yield


def attribute_types(plan: Plan) -> dict[str, dict[str, Any]]:
    """What JSON attributes lose, for readers that restore it (``open_store_dataset``): the
    numpy type of each numeric attribute, and which floats were NaN or infinite."""
    found: dict[str, dict[str, Any]] = {"arrays": {}, "groups": {}}
    nodes = [
        ("groups", g, a, plan.group_attr_types.get(g, {})) for g, a in plan.group_attrs.items()
    ]
    nodes += [
        ("arrays", p, a.template.attrs, a.template.attr_types) for p, a in plan.arrays.items()
    ]
    for kind, path, attrs, types in nodes:
        entry = {
            "types": {k: t for k, t in types.items() if k in attrs and k != "_FillValue"},
            "nonfinite": nonfinite_attributes(attrs),
        }
        if entry["types"] or entry["nonfinite"]:
            found[kind][path] = entry
    return found


def checksum_time(last_modified: str) -> datetime | None:
    """Icechunk refuses a chunk whose object changed after this; one second of slack for
    servers that round Last-Modified down."""
    if not last_modified:
        return None
    return datetime.fromisoformat(last_modified) + timedelta(seconds=1)
