"""A shared repository's index: it names each dataset's newest commit, never goes back to
an older one, and finding a dataset's last commit through it respects the dataset's group."""

from __future__ import annotations

import icechunk
import zarr

from nc2ice.store.contents import read_index, write_index
from nc2ice.store.repository import last_commit


def _commit(repo, dataset: str, group: str, value: int) -> str:
    session = repo.writable_session("main")
    root = zarr.open_group(session.store, mode="a", zarr_format=3)
    root.require_group(group).attrs["v"] = value
    metadata = {"dataset": dataset, "group": group, "value": value}
    return session.commit(f"{dataset}: {value}", metadata=metadata)


def _entry(dataset: str, snapshot: str) -> dict:
    return {"dataset": dataset, "snapshot": snapshot, "files": 1}


def test_an_older_entry_never_replaces_a_newer_one(tmp_path):
    """A run that publishes, then indexes late (after another run published the same dataset
    again and indexed it) leaves the newer entry: the index names what main holds."""
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "r")))
    first = _commit(repo, "D", "g", 1)
    second = _commit(repo, "D", "g", 2)
    write_index(repo, {"g": _entry("D", second)})
    assert write_index(repo, {"g": _entry("D", first)}) is None  # nothing older written
    assert read_index(repo)["g"]["snapshot"] == second
    assert last_commit(repo, "D", repo.lookup_branch("main"), "g")[0] == second


def test_a_commit_the_index_missed_is_caught_up(tmp_path):
    """A run killed between its publish and its index: the next index commit names it."""
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "r")))
    a = _commit(repo, "A", "a", 1)
    write_index(repo, {"a": _entry("A", a)})
    b = _commit(repo, "B", "b", 1)  # published, never indexed
    c = _commit(repo, "C", "c", 1)
    write_index(repo, {"c": _entry("C", c)})
    index = read_index(repo)
    assert {g: e["snapshot"] for g, e in index.items()} == {"a": a, "b": b, "c": c}
    assert last_commit(repo, "B", repo.lookup_branch("main"), "b")[0] == b


def test_a_dataset_moved_to_another_group_is_new_there(tmp_path):
    """Its commits in the old group do not make another dataset's group its own."""
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "r")))
    _commit(repo, "A.x", "old", 1)
    foo = _commit(repo, "B.y", "foo", 1)
    tip = repo.lookup_branch("main")
    assert last_commit(repo, "A.x", tip, "foo") is None
    write_index(repo, {"foo": _entry("B.y", foo)})
    tip = repo.lookup_branch("main")
    assert last_commit(repo, "A.x", tip, "foo") is None
    assert last_commit(repo, "A.x", tip, "old") is not None


def test_a_reader_finds_a_commit_made_after_the_index(tmp_path):
    """nc2ice.open restores a group's attributes from its dataset's newest commit, also when
    the index was written before it."""
    from nc2ice.store.open import _Commits, _metadata_for

    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "r")))
    write_index(repo, {"a": _entry("A", _commit(repo, "A", "a", 1))})
    _commit(repo, "A", "a", 2)
    assert _metadata_for(_Commits(repo, None), "a")["value"] == 2
    assert _metadata_for(_Commits(repo, None), "a/inner")["value"] == 2
