"""Opening a store the way a reader does, from what a user types: a path or URL.

``open`` (``nc2ice.open``) is the reader's one call: a published store or a tree of them,
every virtual chunk container the repository records authorized (anonymously unless AWS
credentials are in the environment), decoded as the validation decodes it.  ``read_with``
writes the same in plain Icechunk and xarray, for readers who do not install nc2ice;
``commit.json``, ``published.json`` and the report show it.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import xarray as xr

from nc2ice.access import Access, S3Options, local_path, normalize_url
from nc2ice.errors import AccessError, PublishError
from nc2ice.logs import quiet_libraries
from nc2ice.store.repository import (
    BRANCH,
    FAILED_TAG,
    INDEX_COMMIT,
    index_at,
    open_repository,
)

# What makes a reader's S3 requests signed: keys, or a profile, in the environment.
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE")
SNAPSHOT_ID = re.compile(r"[0-9A-Z]{20}")  # Icechunk's snapshot ids (tags are anything else)


def open(  # the builtin is not used here: this is nc2ice.open, as users call it
    url: str,
    group: str | None = None,
    *,
    snapshot: str | None = None,
    branch: str = BRANCH,
    endpoint_url: str | None = None,
    region: str | None = None,
    anonymous: bool | None = None,
) -> xr.Dataset | xr.DataTree:
    """A published store as a reader sees it: ``xr.Dataset`` for a ``group`` (or a store
    whose root alone holds arrays), else an ``xr.DataTree`` of every group.

    ``url`` is a local path, a ``file://`` URL or ``s3://bucket/prefix``; an S3 endpoint
    other than AWS's comes from ``endpoint_url`` or the environment (``AWS_ENDPOINT_URL``),
    and is reached path-style (as Acacia, Ceph and MinIO want).  Every virtual chunk
    container the repository records is authorized: S3 ones anonymously unless AWS
    credentials are in the environment (``anonymous`` decides it either way, for the store
    too), HTTP and local ones need none.  ``snapshot`` (an id or a tag) opens that one
    instead of ``branch``'s tip; one that failed validation is refused.  Values decode as
    the validation decoded them (``xr.open_zarr``'s CF decoding, lazily, without dask),
    and attributes get back the numpy types the netCDF files gave them.
    """
    quiet_libraries()
    store_url = normalize_url(url)
    access = reader_access(store_url, endpoint_url, region, anonymous)
    repo = _repository(store_url, access)
    snapshot_id = _snapshot_id(repo, store_url, snapshot, branch)
    session = repo.readonly_session(snapshot_id=snapshot_id)
    root = _root(session.store)
    where = f"{store_url} ({f'snapshot {snapshot}' if snapshot else f'branch {branch!r}'})"
    if root is None or not root.nmembers():
        raise AccessError(
            f"{where} holds nothing yet: no dataset was published to it (a run whose "
            "validation failed leaves its snapshot on a branch of its own, not on main)"
        )
    commits = _Commits(repo, snapshot_id)
    path = (group or "").strip("/")
    if path:
        groups = sorted(name for name, member in root.members(max_depth=None) if _is_group(member))
        if path not in groups:
            shown = ", ".join(groups[:10]) + (", ..." if len(groups) > 10 else "") or "none"
            raise AccessError(f"{where} has no group {path!r} (its groups: {shown})")
    elif not list(root.group_keys()):
        path = ""  # one dataset at the root: a Dataset
    else:
        tree = xr.open_datatree(session.store, engine="zarr", consolidated=False, chunks=None)
        return _restored_tree(tree, commits)
    ds = xr.open_zarr(session.store, consolidated=False, group=path or None, chunks=None)
    metadata = _metadata_for(commits, path)
    inside = path.removeprefix(metadata.get("group", "")).strip("/")
    return restore_attributes(ds, metadata.get("attributes", {}), inside)


def _repository(store_url: str, access: Access) -> Any:
    import icechunk

    try:
        return open_repository(store_url, access)
    except FileNotFoundError:
        raise AccessError(f"{store_url}: no Icechunk repository here") from None
    except icechunk.IcechunkError as exc:
        how = "anonymously" if access.store_s3.anonymous else "with the AWS_* credentials"
        where = access.store_s3.endpoint_url or "AWS S3"
        first = str(exc).strip().splitlines()[0].strip(" x")
        hint = (
            f" (read {how} at {where}: a bucket that is not public needs AWS_* keys, and an "
            "S3-compatible store its endpoint_url)"
            if store_url.startswith("s3://")
            else ""
        )
        raise AccessError(f"{store_url}: cannot open the repository: {first}{hint}") from None


def reader_access(
    store_url: str,
    endpoint_url: str | None = None,
    region: str | None = None,
    anonymous: bool | None = None,
) -> Access:
    """How a reader reaches a store and the sources it references: the endpoint and region
    given or in the environment, anonymous unless AWS credentials are there."""
    if anonymous is None:
        anonymous = not any(os.environ.get(name) for name in CREDENTIAL_VARIABLES)
    if store_url.startswith("s3://"):
        endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
        endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    store = S3Options(
        endpoint_url, region, force_path_style=bool(endpoint_url), anonymous=anonymous
    )
    # the sources' containers carry their own endpoints in the repository's config
    return Access(s3=S3Options(anonymous=anonymous), store_s3=store)


def read_with(
    store_url: str,
    group: str = "",
    containers: Iterable[str] = (),
    *,
    s3: S3Options | None = None,
    tree: bool = False,
    branch: str = BRANCH,
) -> str:
    """The plain Icechunk and xarray code (no nc2ice) that opens a store's ``group`` on
    ``branch`` as ``nc2ice.open`` does: the storage (a local folder, or S3 with the
    endpoint, region and path style of ``s3``, anonymous unless ``s3.anonymous`` is False),
    the virtual chunk ``containers`` authorized (S3 anonymously, or from the environment
    when the store is not anonymous; HTTP and local ones need nothing), then
    ``xr.open_zarr`` or, for a dataset with groups inside (``tree``), ``xr.open_datatree``.
    Attributes come back as Zarr keeps them (JSON: a float32 ``scale_factor`` reads as a
    Python float); the values are the same."""
    s3 = s3 or S3Options(anonymous=True)
    anonymous = s3.anonymous
    lines = ["import icechunk", "import xarray as xr", ""]
    if store_url.startswith("s3://"):
        bucket, _, prefix = store_url[len("s3://") :].partition("/")
        lines += [
            "storage = icechunk.s3_storage(",
            f"    bucket={_q(bucket)},",
            f"    prefix={_q(prefix.strip('/'))},",
            f"    region={_q(s3.region or 'us-east-1')},",
        ]
        if s3.endpoint_url:
            lines.append(f"    endpoint_url={_q(s3.endpoint_url)},")
        if s3.allow_http:
            lines.append("    allow_http=True,")
        if s3.force_path_style:
            lines.append("    force_path_style=True,")
        if anonymous:
            lines.append("    anonymous=True,  # with AWS_* keys in the environment: from_env=True")
        else:
            lines.append("    from_env=True,  # keys from AWS_*; a public bucket: anonymous=True")
        lines.append(")")
    else:
        folder = _q(str(local_path(store_url)))
        lines.append(f"storage = icechunk.local_filesystem_storage({folder})")
    prefixes = sorted(set(containers))
    if prefixes:
        signed = "icechunk.s3_from_env_credentials()"
        unsigned = "icechunk.s3_anonymous_credentials()"
        lines += ["credentials = icechunk.containers_credentials(", "    {"]
        for prefix in prefixes:
            if not prefix.startswith("s3://"):
                lines.append(f"        {_q(prefix)}: None,")
            elif anonymous:
                lines.append(f"        {_q(prefix)}: {unsigned},  # private: {signed}")
            else:
                lines.append(f"        {_q(prefix)}: {signed},")
        lines += ["    }", ")"]
        lines.append(
            "repo = icechunk.Repository.open(storage, authorize_virtual_chunk_access=credentials)"
        )
    else:
        lines.append("repo = icechunk.Repository.open(storage)")
    lines.append(f"session = repo.readonly_session(branch={_q(branch)})")
    where = f", group={_q(group)}" if group else ""
    if tree:
        lines.append(
            f'tree = xr.open_datatree(session.store, engine="zarr"{where}, consolidated=False)'
        )
    else:
        lines.append(f"ds = xr.open_zarr(session.store{where}, consolidated=False)")
    return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    """A Python string literal (JSON's double-quoted form is one)."""
    return json.dumps(text, ensure_ascii=False)


def _snapshot_id(repo: Any, store_url: str, snapshot: str | None, branch: str) -> str:
    """The snapshot to read: ``snapshot`` (an id or a tag) or ``branch``'s tip; refused if
    it failed validation."""
    import icechunk

    try:
        if not snapshot:
            found = repo.lookup_branch(branch)
        elif SNAPSHOT_ID.fullmatch(snapshot):
            found = repo.lookup_snapshot(snapshot).id
        else:
            found = repo.lookup_tag(snapshot)
    except icechunk.IcechunkError:
        what = f"snapshot or tag {snapshot!r}" if snapshot else f"branch {branch!r}"
        raise AccessError(f"{store_url}: no {what} in this repository") from None
    try:
        repo.lookup_tag(f"{FAILED_TAG}{found}")
    except icechunk.IcechunkError:  # not marked (or tags cannot be read: a public bucket)
        return found
    raise PublishError(
        f"{store_url}: snapshot {found} failed validation: it does not read back as its "
        "sources, and was never published. Look at it with nc2ice.open_store_dataset(store, "
        "snapshot=...) if you must; readers should open main"
    )


def _root(store: Any) -> Any:
    """The root group, or None where the snapshot holds none (a new repository)."""
    import zarr
    from zarr.errors import GroupNotFoundError

    try:
        return zarr.open_group(store, mode="r")
    except GroupNotFoundError:
        return None


def _is_group(member: Any) -> bool:
    import zarr

    return isinstance(member, zarr.Group)


def _restored_tree(tree: xr.DataTree, commits: _Commits) -> xr.DataTree:
    """Every group's attributes restored, each from the commit of the dataset holding it."""
    nodes = {}
    for node in tree.subtree:
        path = node.path.strip("/")
        metadata = _metadata_for(commits, path)
        inside = path.removeprefix(metadata.get("group", "")).strip("/")
        ds = node.to_dataset(inherit=False)
        nodes[node.path] = restore_attributes(ds, metadata.get("attributes", {}), inside)
    return xr.DataTree.from_dict(nodes)


def open_store_dataset(
    store: str,
    access: Access | None = None,
    group: str | None = None,
    snapshot: str | None = None,
    decode: bool = True,
) -> xr.Dataset:
    """A store as ``xr.open_zarr`` opens it (the branch tip, or one snapshot), with the
    attributes as the netCDF files had them.

    ``store`` is a local path or a ``file://`` / ``s3://`` URL; ``access`` says how S3 is
    reached (the workflow's config: ``Access.from_config(config)``), anonymous by default.
    Zarr attributes are JSON, which drops the width of numbers (a float32 ``scale_factor``
    reads as a Python float) and cannot hold NaN; the commit records both in the snapshot's
    metadata, and this puts them back.  ``decode=False`` gives the numbers as stored.
    """
    quiet_libraries()
    repo = open_repository(normalize_url(store), access or Access())
    if snapshot:
        session = repo.readonly_session(snapshot_id=snapshot)
    else:
        session = repo.readonly_session(branch=BRANCH)
    ds = xr.open_zarr(
        session.store,
        consolidated=False,
        group=group or None,
        chunks=None,
        decode_cf=decode,
        create_default_indexes=decode,  # raw numbers are compared, never looked up
    )
    commits = _Commits(repo, snapshot)
    metadata = _metadata_for(commits, group or "")
    inside = (group or "").removeprefix(metadata.get("group", "")).strip("/")
    return restore_attributes(ds, metadata.get("attributes", {}), inside)


class _Commits:
    """The metadata of the dataset commits in a snapshot's history, newest first, read
    only as far as asked (a history can be long, and on S3 each snapshot is a request)."""

    def __init__(self, repo: Any, snapshot: str | None, branch: str = BRANCH):
        history = repo.ancestry(snapshot_id=snapshot) if snapshot else repo.ancestry(branch=branch)
        self._history: Iterator[Any] | None = iter(history)
        self._seen: list[dict[str, Any]] = []
        # a shared repository's index names each dataset's last commit: no walk through
        # thousands of other datasets' commits for each group of a tree
        self.repo = repo
        self.tip = snapshot or repo.lookup_branch(branch)
        self._after_index = _since_index(repo, self.tip)  # read only as far as asked
        self._recent: list[dict[str, Any]] = []

    @functools.cached_property
    def newest(self) -> dict[str, Any]:
        return dict(self.repo.lookup_snapshot(self.tip).metadata or {})

    @functools.cached_property
    def index(self) -> dict[str, Any]:
        return index_at(self.repo, self.tip)  # a thousand datasets' index: read if need be

    def indexed(self, group: str) -> dict[str, Any] | None:
        """The metadata of the commit the index names for ``group``'s dataset, {} for a
        group above the datasets' groups; None where the index cannot say (no index, or a
        dataset committed after it): then the history is walked."""
        newest = self.newest
        if "dataset" in newest and f"{group}/".startswith(f"{newest.get('group', '')}/"):
            return newest  # the snapshot is the dataset's own commit (validation reads those)
        if not self.index:
            return None
        for metadata in self._since_index():  # committed after the index was last written
            if f"{group}/".startswith(f"{metadata.get('group', '')}/"):
                return metadata
        for mine, entry in self.index.items():
            if f"{group}/".startswith(f"{mine}/"):
                metadata = dict(self.repo.lookup_snapshot(entry["snapshot"]).metadata or {})
                return metadata if metadata.get("dataset") == entry.get("dataset") else None
        above = not group or any(m.startswith(f"{group}/") for m in self.index)
        return {} if above else None

    def _since_index(self) -> Iterator[dict[str, Any]]:
        yield from self._recent
        for metadata in self._after_index:
            self._recent.append(metadata)
            yield metadata

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield from self._seen
        while self._history is not None:
            info = next(self._history, None)
            if info is None:
                self._history = None
                return
            metadata = dict(info.metadata or {})
            if "dataset" in metadata:
                self._seen.append(metadata)
                yield metadata


def _since_index(repo: Any, tip: str) -> Iterator[dict[str, Any]]:
    """The dataset commits after the index's newest commit, newest first."""
    for info in repo.ancestry(snapshot_id=tip):
        metadata = dict(info.metadata or {})
        if INDEX_COMMIT in metadata:
            return
        if "dataset" in metadata:
            yield metadata


def _metadata_for(commits: _Commits, group: str) -> dict[str, Any]:
    """The metadata of the last commit of the dataset holding ``group`` (in a repository
    shared by datasets, the branch's tip may be another dataset's commit)."""
    found = commits.indexed(group)
    if found is not None:
        return found
    for metadata in commits:
        mine = metadata.get("group", "")
        if not mine or f"{group}/".startswith(f"{mine}/"):
            return metadata
    return {}


def restore_attributes(ds: xr.Dataset, recorded: dict[str, Any], group: str) -> xr.Dataset:
    """Give attributes back the numpy types and non-finite values the commit recorded."""
    arrays, groups = recorded.get("arrays", {}), recorded.get("groups", {})
    ds.attrs = _restored(ds.attrs, groups.get(group, {}))
    for name, var in ds.variables.items():
        var.attrs = _restored(var.attrs, arrays.get(f"{group}/{name}".lstrip("/"), {}))
    return ds


def _restored(attrs: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    if not entry:
        return attrs
    out = dict(attrs)
    for key in entry.get("nonfinite", []):
        if key in out:
            out[key] = _nonfinite(out[key])
    for key, name in entry.get("types", {}).items():
        if key in out:
            value = np.asarray(out[key], dtype=name)
            out[key] = value if value.ndim else value[()]
    return out


def _nonfinite(value: Any) -> Any:
    if isinstance(value, list):
        return [_nonfinite(v) for v in value]
    words = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
    return words.get(value, value) if isinstance(value, str) else value
