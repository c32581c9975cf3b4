"""Committing a plan to Icechunk: what changed since the dataset's last commit, written as
one new snapshot, tagged, with what changed in its message and metadata.

- Nothing changed (the inputs' digest equals the last commit's): no commit.
- New files after the last ones, the rest unchanged: an append. The arrays grow, and only
  their new chunks (and a last chunk the old end shared) are written.
- Anything else (a file changed, dropped or inserted, a setting or a variable's structure
  changed): the dataset is rewritten in one snapshot, and the log says which file forced it.

Either the branch gets the one new snapshot, or nothing changes: a reference Icechunk
refuses stops the commit, a first commit that fails removes the repository it created, and
a writer that finds another commit on the branch rebases onto it when they changed
different arrays (another dataset of the same repository) and fails, naming it, otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import uuid
from collections.abc import Iterator
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


def package_versions() -> dict[str, str]:
    return {name: version(name) for name in PACKAGES}


def input_digest(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def open_repository(store_url: str, access: Access) -> icechunk.Repository:
    """Open a repository with read access to every container it records."""
    storage = access.storage(store_url)
    if not icechunk.Repository.exists(storage):
        raise FileNotFoundError(f"{store_url}: no Icechunk repository here")
    prefixes = list(icechunk.Repository.open(storage).config.virtual_chunk_containers or {})
    return icechunk.Repository.open(
        storage, authorize_virtual_chunk_access=access.authorize(prefixes)
    )


def last_commit(repo: icechunk.Repository, dataset: str) -> tuple[str, dict[str, Any]] | None:
    """The latest snapshot on the branch that committed ``dataset``, and its metadata."""
    for snapshot in repo.ancestry(branch=BRANCH):
        metadata = dict(snapshot.metadata or {})
        if metadata.get("dataset") == dataset:
            return snapshot.id, metadata
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
    if not change.why:
        change.action = "appended"
    return change


def _why_rewrite(plan, metadata, previous, before: list[str], change: Change) -> str | None:
    if previous.get("config") != metadata["config"]:
        keys = sorted(
            k
            for k in set(previous.get("config", {})) | set(metadata["config"])
            if previous.get("config", {}).get(k) != metadata["config"].get(k)
        )
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


def _would_be(array: ArrayPlan) -> dict[str, Any]:
    """The Zarr metadata the array gets, from a throwaway in-memory store."""
    root = zarr.open_group(zarr.storage.MemoryStore(), mode="w", zarr_format=3)
    return dict(create_array(root, array, layout(array)).metadata.to_dict())


def stored_arrays(repo: icechunk.Repository, group: str) -> dict[str, dict] | None:
    """The committed arrays of a dataset's group: their metadata by path."""
    store = repo.readonly_session(branch=BRANCH).store
    try:
        root = zarr.open_group(store, path=group or None, mode="r", zarr_format=3)
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return None
    found = {}
    for path, array in root.members(max_depth=None):
        if isinstance(array, zarr.Array):
            found[path] = dict(array.metadata.to_dict())
    return found or None


# -- committing -------------------------------------------------------------------------------


@dataclass
class Outcome:
    snapshot: str
    new: bool
    change: Change
    tag: str | None = None
    parts: int = 0


def commit_plan(
    plan: Plan,
    *,
    dataset: str,
    store_url: str,
    group: str,
    access: Access,
    prefixes: list[str],
    metadata: dict[str, Any],
    checksums: dict[str, str | datetime],
    part_references: int = PART_REFERENCES,
) -> Outcome:
    """Commit ``plan`` as the dataset's new state (see the module's docstring)."""
    for array in plan.arrays.values():  # a codec no reader has fails here, before any write
        layout(array)
    storage = access.storage(store_url)
    created = not icechunk.Repository.exists(storage)
    with _local_lock(store_url):
        try:
            return _commit(
                plan,
                dataset,
                store_url,
                group,
                access,
                prefixes,
                metadata,
                checksums,
                part_references,
            )
        except BaseException:
            if created:
                access.remove_repository(store_url)
            raise


def _commit(
    plan, dataset, store_url, group, access, prefixes, metadata, checksums, part_references
):
    repo = _open_for_writing(store_url, access, prefixes, plan)
    found = last_commit(repo, dataset)
    previous = found[1] if found else None
    change = decide(plan, metadata, previous, stored_arrays(repo, group) if found else None)
    if change.action == "unchanged":
        log.info(
            "%s: already holds these inputs (snapshot %s); nothing to commit", store_url, found[0]
        )
        return Outcome(found[0], False, change)
    repo.save_config()
    _clear_work_branches(repo, dataset)
    metadata = {**metadata, "group": group, "change": change.record()}
    message = f"{dataset}: {change.summary()}: {len(plan.files)} files"
    label = f"{dataset} {change.action}"
    tip = repo.lookup_branch(BRANCH)
    references = _references(plan, change)
    work = f"nc2ice-{dataset}-{uuid.uuid4().hex[:8]}" if references > part_references else None
    if work:
        repo.create_branch(work, tip)
    try:
        writer = Writer(repo, work or BRANCH, part_references, label)
        _write(writer, plan, group, change, checksums, access)
        pause("commit:written")
        snapshot = writer.commit(message, metadata)
        if work:
            _publish(repo, snapshot, tip)
    finally:
        if work:
            repo.delete_branch(work)
    tag = _tag(repo, dataset, snapshot, metadata["input_digest"])
    log.info("%s: %s; committed snapshot %s, tagged %s", dataset, change.summary(), snapshot, tag)
    return Outcome(snapshot, True, change, tag, len(writer.parts))


def _open_for_writing(store_url: str, access: Access, prefixes: list[str], plan: Plan):
    """Open or create a repository with a container for each of ``prefixes`` (and those it
    had), its manifests split along the concatenation dimension."""
    storage = access.storage(store_url)
    exists = icechunk.Repository.exists(storage)
    if exists:
        had = icechunk.Repository.open(storage).config.virtual_chunk_containers or {}
        prefixes = sorted(set(prefixes) | set(had))
    config = access.repository_config(prefixes)
    splitting = _splitting(plan)
    if splitting is not None:
        config.manifest = icechunk.ManifestConfig(splitting=splitting)
    creds = access.authorize(prefixes)
    if exists:
        return icechunk.Repository.open(
            storage, config=config, authorize_virtual_chunk_access=creds
        )
    repo = icechunk.Repository.create(storage, config=config, authorize_virtual_chunk_access=creds)
    # The root group, committed on its own: datasets sharing the repository then each add
    # only their group, and writers of different datasets never change the same node.
    session = repo.writable_session(BRANCH)
    zarr.open_group(session.store, mode="w", zarr_format=3)
    session.commit("nc2ice: the repository's root group")
    return repo


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


def _references(plan: Plan, change: Change) -> int:
    if change.action != "appended":
        return sum(len(a.refs) for a in plan.arrays.values())
    return sum(
        int((a.refs.lengths[_first_chunk(a, change) :] > 0).sum())
        for a in plan.arrays.values()
        if a.data is None and a.axis is not None
    )


def _first_chunk(array: ArrayPlan, change: Change) -> int:
    """The first grid index an append writes: the chunk holding the old end onwards."""
    return change.start.get(array.path, 0) // array.chunks[0]


def _write(
    writer: Writer, plan: Plan, group: str, change: Change, checksums, access: Access
) -> None:
    reader = lambda var, region: read_region(var, region, access)  # noqa: E731
    if change.action == "appended":
        _append(writer, plan, group, change, checksums, reader)
        return
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
        write_references(writer, where, array.refs, checksums)
        write_copies(writer, where, array, reader)


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


def _publish(repo: icechunk.Repository, snapshot: str, tip: str) -> None:
    """Move the branch to the last part, if nobody moved it meanwhile."""
    try:
        repo.reset_branch(BRANCH, snapshot, from_snapshot_id=tip)
    except icechunk.IcechunkError:
        now = next(iter(repo.ancestry(branch=BRANCH)))
        raise CommitError(
            f"another run committed snapshot {now.id} ({now.message!r}) to {BRANCH!r} while "
            "this one was writing; nothing of this run was committed: run again"
        ) from None


def _clear_work_branches(repo: icechunk.Repository, dataset: str) -> None:
    """Work branches a killed run left behind hold only parts nobody will publish."""
    for branch in repo.list_branches():
        if branch.startswith(f"nc2ice-{dataset}-"):
            repo.delete_branch(branch)


def _tag(repo: icechunk.Repository, dataset: str, snapshot: str, digest: str) -> str:
    tag = f"{dataset}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{digest[:8]}"
    repo.create_tag(tag, snapshot)
    return tag


@contextlib.contextmanager
def _local_lock(store_url: str) -> Iterator[None]:
    """Icechunk's local storage is not safe for two commits at once: refuse the second."""
    if not store_url.startswith("file://"):
        yield
        return
    path = local_path(store_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = Path(f"{path}.lock")
    with lock.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CommitError(
                f"{store_url}: another run is committing to this store now, and a store on a "
                "local filesystem is not safe for two commits at once: wait for it to finish, "
                "or keep the store on S3, where concurrent commits are safe"
            ) from None
        except OSError:  # a filesystem without locks (some Lustre mounts): go on
            pass
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
