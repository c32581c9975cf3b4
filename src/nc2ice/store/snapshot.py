"""Committing a plan to Icechunk: the dataset's new state as a snapshot on a branch of its own.

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
import functools
import hashlib
import json
import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from typing import Any

import icechunk
import zarr

from nc2ice.access import Access
from nc2ice.combine.plan import ArrayPlan, Plan
from nc2ice.config import store_settings
from nc2ice.errors import CommitError
from nc2ice.faults import pause
from nc2ice.model.chunks import read_region
from nc2ice.store.arrays import (
    PART_REFERENCES,
    Writer,
    create_array,
    layout,
    nonfinite_attributes,
    put_nodes,
    write_copies,
    write_references,
)
from nc2ice.store.repository import (
    BRANCH,
    FAILED_TAG,
    ensure_repository,
    group_at,
    last_commit,
    open_for_writing,
    store_lock,
    tag_of,
    touched,
)

log = logging.getLogger(__name__)
PACKAGES = ("nc2ice", "virtualizarr", "icechunk", "zarr", "xarray", "obstore", "h5py", "snakemake")


@functools.cache  # reading package metadata costs a bundle 15 ms per dataset
def package_versions() -> dict[str, str]:
    return {name: version(name) for name in PACKAGES}


def input_digest(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


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
        # per file, where the arrays it is part of are rewritten from (a fused dataset's
        # parts have arrays, and extents, of their own)
        rewritten_from: dict[str, float] = {}
        for a in plan.arrays.values():
            if a.axis is not None and a.data is None:
                end = _first_chunk(a, change) * a.chunks[0]
                for part in a.parts:
                    rewritten_from[part.file_id] = min(rewritten_from.get(part.file_id, end), end)
        old = [f for f in plan.files if f not in change.appended]
        return [
            f for f in old if sum(extents.get(f, [0, math.inf])) <= rewritten_from.get(f, math.inf)
        ]
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
    root = group_at(repo, snapshot, group)
    if root is None:
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
    # The commit itself takes no lock: it goes to a new branch of its own, which nobody else
    # writes to (main moves when publishing, under the lock).  It waits for a publishing in
    # progress all the same (and saves new containers meanwhile): a commit based on a main
    # about to move is written a second time on publishing.  Two bundles of a run writing
    # one repository had to write 45% of their datasets twice waiting, 98% not waiting.
    with store_lock(store_url):
        repo = open_for_writing(store_url, access, prefixes, plan, locked=True)
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
        found = last_commit(self.repo, self.dataset, base, self.group)
        if found is None:
            _refuse_if_not_ours(self.repo, base, self.group, self.dataset, self.store_url)
        previous = found[1] if found else None
        stored = stored_arrays(self.repo, self.group, base) if found else None
        change = decide(self.plan, metadata, previous, stored)
        trusted = unchanged_files(self.plan, metadata, previous, stored, change)
        since = found[0] if found else None
        if since is not None and since != base and touched(self.repo, since, base, self.group):
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
        waiting = waiting_branch(self.dataset, metadata["input_digest"], base)
        kept = waiting_snapshot(self.repo, self.dataset, waiting, metadata["input_digest"], base)
        if kept is not None:  # a run killed after writing it: validate that one
            branch, snapshot = kept
            log.info(
                "%s: snapshot %s on branch %s already holds this change",
                self.dataset,
                snapshot,
                branch,
            )
            return Outcome(snapshot, True, change, base, branch, tag, 0, trusted, since)
        branch = _new_branch(self.repo, waiting, base)
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
        if change.action == "rewritten" or not group:  # what the group held goes
            zarr.open_group(writer.store, path=group or None, mode="w", zarr_format=3)
        written = put_nodes(writer.store, plan, group)
        for path, array in plan.arrays.items():
            where = _join(group, path)
            if array.data is None:
                write_references(writer, where, array.refs, self.checksums)
                write_copies(writer, where, array, reader)
            elif path not in written:  # values too large to build in memory first
                zarray = zarr.open_array(writer.store, path=where, mode="r+", zarr_format=3)
                zarray[...] = array.data


def _new_branch(repo: icechunk.Repository, name: str, base: str) -> str:
    """A new branch at ``base``: ``name``, or where that one is taken (a failed snapshot,
    or another run's commit of the same inputs made at the same moment) a unique variant.
    Creating a branch is an atomic create-if-absent, on a local disk as on S3."""
    if tag_of(repo, name, branch=True) is None:
        try:
            repo.create_branch(name, base)
            return name
        except icechunk.IcechunkError as exc:
            if "conflict" not in str(exc):
                raise
    unique = f"{name}-{uuid.uuid4().hex[:6]}"
    repo.create_branch(unique, base)
    return unique


def _refuse_if_not_ours(
    repo: icechunk.Repository, base: str, group: str, dataset: str, store_url: str
) -> None:
    """A repository (or, in a shared one, a group) that holds anything nc2ice did not commit
    for this dataset is someone else's: never overwritten."""
    node = group_at(repo, base, group)
    if node is None:
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


def waiting_branch(dataset: str, digest: str, base: str | None) -> str:
    """The branch a commit of these inputs on this base writes to: a rerun after a kill
    finds it by name (listing branches grows slow with every tag a collection makes)."""
    return f"nc2ice-{dataset}-{digest[:12]}-{(base or 'new')[:8]}"


def waiting_snapshot(
    repo: icechunk.Repository, dataset: str, branch: str, digest: str, base: str
) -> tuple[str, str] | None:
    """The snapshot an earlier run of ``dataset`` left on ``branch`` holding the same inputs on
    the same base: (branch, snapshot), or None."""
    tip = tag_of(repo, branch, branch=True)
    if tip is None:
        return None
    info = repo.lookup_snapshot(tip)
    metadata = dict(info.metadata or {})
    if tag_of(repo, f"{FAILED_TAG}{info.id}") is not None or metadata.get("dataset") != dataset:
        return None  # a snapshot that failed validation is never offered again
    if metadata.get("input_digest") == digest and metadata.get("base") == base:
        return branch, info.id
    return None


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
