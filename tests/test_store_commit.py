"""Committing and publishing (issue 14): a commit writes a branch of its own, publishing moves
main only to validated snapshots, big commits are written in parts at every boundary, and a
location that holds anything but a repository is refused before any write."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import icechunk
import numpy as np
import pytest
import zarr

from nc2ice.access import Access, normalize_url, prefix_of
from nc2ice.combine.plan import combine
from nc2ice.errors import CommitError
from nc2ice.model.manifest import Manifest, Variable
from nc2ice.store import arrays as writer
from nc2ice.store.open import open_store_dataset
from nc2ice.store.publish import publish
from nc2ice.store.repository import kept_repository, open_repository
from nc2ice.store.snapshot import commit_plan


def _raw_file(tmp_path, name: str, values: np.ndarray) -> str:
    path = tmp_path / name
    path.write_bytes(values.astype("<f4").tobytes())
    return normalize_url(str(path))


def _plan(tmp_path, steps: int, files: int = 1, name: str = "v"):
    """``files`` uncompressed files of ``steps`` one-value chunks each: one reference a step."""
    manifests = []
    for i in range(files):
        values = np.arange(steps, dtype="<f4") + 1000 * i
        url = _raw_file(tmp_path, f"{name}{i}.bin", values)
        refs = {(s,): (url, 4 * s, 4) for s in range(steps)}
        time = Variable(
            "time",
            ("time",),
            (steps,),
            (steps,),
            "<f8",
            {"units": "days since 2000-01-01"},
            data=np.arange(steps, dtype="f8") + steps * i,
        )
        v = Variable(name, ("time",), (steps,), (1,), "<f4", {}, refs=refs, virtual=True)
        manifests.append((f"f{i}", Manifest(url, {"time": time, name: v}, {"": {}})))
    return combine(manifests, concat_dim="time"), manifests


def _metadata(plan, digest: str = "d") -> dict:
    return {
        "dataset": "test",
        "input_digest": digest,
        "order": plan.files,
        "sources": {f: {"url": "", "manifest_sha256": f} for f in plan.files},
        "config": {},
    }


def _commit(plan, store: str, prefixes, part_references=writer.PART_REFERENCES, **kw):
    return commit_plan(
        plan,
        dataset=kw.pop("dataset", "test"),
        store_url=store,
        group=kw.pop("group", ""),
        access=Access(),
        prefixes=prefixes,
        metadata=kw.pop("metadata", None) or _metadata(plan),
        checksums={},
        part_references=part_references,
        **kw,
    )


@pytest.mark.parametrize(
    ("steps", "part", "parts"),
    [
        (24, 8, 2),  # exactly three parts' worth: two committed as parts, the last with the commit
        (25, 8, 3),  # three parts and one reference more
        (24, 100, 0),  # one part: no part commits at all
        (24, 1, 23),  # a part per reference
    ],
)
def test_a_commit_in_parts_at_every_boundary_reads_back(tmp_path, monkeypatch, steps, part, parts):
    monkeypatch.setattr(writer, "BLOCK", 1)  # a block per reference: every boundary is met
    plan, _ = _plan(tmp_path, steps)
    store = normalize_url(str(tmp_path / "store.icechunk"))
    prefix = prefix_of(normalize_url(str(tmp_path / "v0.bin")))
    outcome = _commit(plan, store, [prefix], part_references=part)
    assert outcome.parts == parts
    repo = open_repository(store, Access())
    assert repo.lookup_branch("main") == outcome.base  # not published yet
    publish(repo, "test", "", outcome, rewrite=lambda tip: outcome)
    got = zarr.open_array(repo.readonly_session("main").store, path="v", mode="r")[:]
    assert got.tolist() == list(range(steps))
    assert outcome.branch not in repo.list_branches()  # published: its branch is gone


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_folder_holding_anything_else_is_refused_and_kept(tmp_path, what):
    plan, _ = _plan(tmp_path, 2)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    (folder / "data").mkdir()
    target = folder / "thesis.tex" if what == "file" else folder
    store = normalize_url(str(target))
    with pytest.raises(CommitError, match="not an Icechunk repository, and not empty"):
        _commit(plan, store, [prefix_of(normalize_url(str(tmp_path / "v0.bin")))])
    assert (folder / "thesis.tex").read_text() == "years of work" and (folder / "data").is_dir()
    assert sorted(p.name for p in folder.iterdir()) == ["data", "thesis.tex"]


def test_an_empty_folder_is_used_and_a_failed_commit_removes_only_its_branch(tmp_path):
    plan, _ = _plan(tmp_path, 2)
    (tmp_path / "empty").mkdir()
    store = normalize_url(str(tmp_path / "empty"))
    with pytest.raises(CommitError, match="Icechunk refused"):
        _commit(plan, store, ["http://elsewhere.example/"])  # no container for the files
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(tmp_path / "empty")))
    assert repo.list_branches() == {"main"}
    assert [s.message for s in repo.ancestry(branch="main")] == ["Repository initialized"]
    outcome = _commit(plan, store, [prefix_of(normalize_url(str(tmp_path / "v0.bin")))])
    assert outcome.new and outcome.branch in open_repository(store, Access()).list_branches()


def test_publishing_keeps_other_datasets_and_refuses_a_rival_of_the_same(tmp_path):
    """Two datasets of one repository write their snapshots from the same main; the second to
    publish writes its change again on top of the first. A rival commit of the same dataset
    is refused instead, and main keeps the rival."""
    store = normalize_url(str(tmp_path / "shared.icechunk"))
    prefix = prefix_of(normalize_url(str(tmp_path / "a0.bin")))
    plans = {name: _plan(tmp_path, 3, name=name)[0] for name in ("a", "b")}
    outcomes = {
        name: _commit(plan, store, [prefix], dataset=name, group=name, metadata=_named(plan, name))
        for name, plan in plans.items()
    }
    repo = open_repository(store, Access())
    publish(repo, "a", "a", outcomes["a"], rewrite=lambda tip: pytest.fail("main did not move"))

    def again(tip: str):
        return _commit(
            plans["b"],
            store,
            [prefix],
            dataset="b",
            group="b",
            base=tip,
            metadata=_named(plans["b"], "b"),
        )

    done = publish(repo, "b", "b", outcomes["b"], rewrite=again)
    assert done.replayed and done.snapshot != outcomes["b"].snapshot
    main = repo.readonly_session("main").store
    for name in ("a", "b"):
        assert zarr.open_array(main, path=f"{name}/{name}", mode="r")[:].tolist() == [0, 1, 2]

    rival = _commit(
        plans["a"],
        store,
        [prefix],
        dataset="a",
        group="a",
        metadata=_named(plans["a"], "a", digest="other"),
    )
    late = _commit(
        plans["a"],
        store,
        [prefix],
        dataset="a",
        group="a",
        base=rival.base,
        metadata=_named(plans["a"], "a", digest="late"),
    )
    publish(repo, "a", "a", rival, rewrite=lambda tip: pytest.fail("main did not move"))
    with pytest.raises(CommitError, match="another run committed snapshot .* changed a's arrays"):
        publish(repo, "a", "a", late, rewrite=lambda tip: pytest.fail("must not write again"))
    assert repo.lookup_branch("main") == rival.snapshot
    assert late.branch in repo.list_branches()  # kept, named in the message


def test_commits_at_once_into_one_local_repository_all_survive(tmp_path, monkeypatch):
    """Commits of three datasets into one local repository overlap (only saving new
    containers takes the store's lock): each writes a branch of its own, and publishing
    them one after the other keeps all three on main."""
    store = normalize_url(str(tmp_path / "shared.icechunk"))
    prefix = prefix_of(normalize_url(str(tmp_path / "a0.bin")))
    names = ("a", "b", "c")
    plans = {name: _plan(tmp_path, 3, name=name)[0] for name in names}
    # every commit waits after writing, before committing: all three are mid-commit at once
    monkeypatch.setenv("NC2ICE_PAUSE_AT", "commit:written")
    monkeypatch.setenv("NC2ICE_PAUSE_SECONDS", "0.5")

    def commit(name: str, base: str | None = None):
        return _commit(
            plans[name],
            store,
            [prefix],
            dataset=name,
            group=name,
            base=base,
            metadata=_named(plans[name], name),
        )

    with ThreadPoolExecutor(3) as pool:
        outcomes = dict(zip(names, pool.map(commit, names), strict=True))
    monkeypatch.delenv("NC2ICE_PAUSE_AT")
    assert len({o.branch for o in outcomes.values()}) == 3
    repo = open_repository(store, Access())
    for name, outcome in outcomes.items():
        publish(repo, name, name, outcome, rewrite=lambda tip, name=name: commit(name, tip))
    main = repo.readonly_session("main").store
    for name in names:
        assert zarr.open_array(main, path=f"{name}/{name}", mode="r")[:].tolist() == [0, 1, 2]
    assert repo.list_branches() == {"main"}  # each work branch dropped once published


def test_commits_adding_containers_at_once_keep_every_container(tmp_path):
    """Three commits whose files are in three folders (three new containers) at once: each
    saves its container under the store's lock, re-reading the others', so the repository
    records all three, and every dataset reads back once published."""
    store = normalize_url(str(tmp_path / "shared.icechunk"))
    names = ("a", "b", "c")
    for name in names:
        (tmp_path / name).mkdir()
    plans = {name: _plan(tmp_path / name, 3, name=name)[0] for name in names}
    prefixes = {n: prefix_of(normalize_url(str(tmp_path / n / f"{n}0.bin"))) for n in names}
    _commit(
        plans["a"], store, [prefixes["a"]], dataset="a", group="a", metadata=_named(plans["a"], "a")
    )

    def commit(name: str, base: str | None = None):
        metadata = _named(plans[name], name)
        return _commit(
            plans[name],
            store,
            [prefixes[name]],
            dataset=name,
            group=name,
            base=base,
            metadata=metadata,
        )

    with ThreadPoolExecutor(3) as pool:
        outcomes = dict(zip(names, pool.map(commit, names), strict=True))
    repo = open_repository(store, Access())
    assert set(prefixes.values()) <= set(repo.config.virtual_chunk_containers)
    for name, outcome in outcomes.items():
        publish(repo, name, name, outcome, rewrite=lambda tip, name=name: commit(name, tip))
    main = open_repository(store, Access()).readonly_session("main").store
    for name in names:
        assert zarr.open_array(main, path=f"{name}/{name}", mode="r")[:].tolist() == [0, 1, 2]


def test_a_new_group_made_meanwhile_by_a_rival_is_refused(tmp_path):
    """Two runs create one new dataset from the same main with other inputs: the second to
    publish finds the group made meanwhile, and is refused (nothing of it on main)."""
    store = normalize_url(str(tmp_path / "shared.icechunk"))
    prefix = prefix_of(normalize_url(str(tmp_path / "a0.bin")))
    plan, _ = _plan(tmp_path, 3, name="a")
    runs = [
        _commit(plan, store, [prefix], dataset="a", group="a", metadata=_named(plan, "a", digest=d))
        for d in ("first", "second")
    ]
    repo = open_repository(store, Access())
    publish(repo, "a", "a", runs[0], rewrite=lambda tip: pytest.fail("main did not move"))
    with pytest.raises(CommitError, match="changed a's arrays"):
        publish(repo, "a", "a", runs[1], rewrite=lambda tip: pytest.fail("must not write again"))
    assert repo.lookup_branch("main") == runs[0].snapshot


def _named(plan, name: str, digest: str | None = None) -> dict:
    return {**_metadata(plan, digest or name), "dataset": name}


def test_a_repository_nc2ice_did_not_write_is_never_overwritten(tmp_path):
    """Someone else's Icechunk repository, or their group in a shared one, is refused:
    nothing of theirs leaves main."""
    store = normalize_url(str(tmp_path / "theirs.icechunk"))
    repo = icechunk.Repository.create(
        icechunk.local_filesystem_storage(str(tmp_path / "theirs.icechunk"))
    )
    session = repo.writable_session("main")
    root = zarr.open_group(session.store, mode="w")
    root.create_array("their_results", shape=(3,), dtype="f4")[:] = 7.0
    root.require_group("v").create_array("kept", shape=(2,), dtype="i4")[:] = 1
    theirs = session.commit("their work")
    plan, _ = _plan(tmp_path, 2)
    prefix = prefix_of(normalize_url(str(tmp_path / "v0.bin")))
    with pytest.raises(CommitError, match="which no commit of dataset 'test' by nc2ice wrote"):
        _commit(plan, store, [prefix])
    with pytest.raises(CommitError, match="group 'v' already holds kept"):
        _commit(plan, store, [prefix], group="v")
    assert open_repository(store, Access()).lookup_branch("main") == theirs
    _commit(plan, store, [prefix], group="mine")  # a group of its own: fine


def test_a_dataset_put_in_one_go_keeps_the_root_and_writes_every_value(tmp_path, monkeypatch):
    """A dataset's groups and arrays are built in memory and put at once: the groups above
    its own are made only where there are none (the root keeps its attributes, e.g. the
    index), small values go with the metadata, larger ones through Zarr; all read back."""
    store = normalize_url(str(tmp_path / "shared.icechunk"))
    prefix = prefix_of(normalize_url(str(tmp_path / "a0.bin")))
    plan, _ = _plan(tmp_path, 5, files=2, name="a")
    first = _commit(plan, store, [prefix], dataset="a", group="m/a", metadata=_named(plan, "a"))
    repo = open_repository(store, Access())
    publish(repo, "a", "m/a", first, rewrite=lambda tip: pytest.fail("main did not move"))
    session = repo.writable_session("main")
    zarr.open_group(session.store, mode="r+").attrs["kept"] = {"m/a": "listed"}
    session.commit("the root's attributes")
    monkeypatch.setattr(writer, "SMALL_VALUES", 0)  # every value through Zarr this time
    plan_b, _ = _plan(tmp_path, 4, name="b")
    second = _commit(
        plan_b, store, [prefix], dataset="b", group="m/n/b", metadata=_named(plan_b, "b")
    )
    publish(repo, "b", "m/n/b", second, rewrite=lambda tip: pytest.fail("main did not move"))
    main = zarr.open_group(repo.readonly_session("main").store, mode="r")
    assert dict(main.attrs) == {"kept": {"m/a": "listed"}}
    assert isinstance(main["m/n"], zarr.Group)
    assert main["m/a/a"][:].tolist() == [*range(5), *range(1000, 1005)]
    assert main["m/a/time"][:].tolist() == list(range(10))
    assert main["m/n/b/time"][:].tolist() == list(range(4))
    assert main["m/n/b/b"][:].tolist() == list(range(4))


def test_a_kept_handle_sees_other_writers_and_validation_reads_storage(tmp_path):
    """The handle kept for the next commit (its snapshots stay in memory) reads branches
    afresh and is replaced once another writer records a container; a reader's handle, as
    validation's, reads what is stored, not what this process remembers writing."""
    store = normalize_url(str(tmp_path / "shared.icechunk"))
    prefix = prefix_of(normalize_url(str(tmp_path / "a0.bin")))
    plan, _ = _plan(tmp_path, 3, name="a")
    outcome = _commit(plan, store, [prefix], dataset="a", group="a", metadata=_named(plan, "a"))
    kept = kept_repository(store, Access())
    assert kept_repository(store, Access()) is kept
    assert open_repository(store, Access()) is not kept
    other = icechunk.Repository.open(
        icechunk.local_filesystem_storage(str(tmp_path / "shared.icechunk"))
    )
    other.reset_branch("main", outcome.snapshot)  # another process moves main
    assert kept.lookup_branch("main") == outcome.snapshot
    config = other.config
    config.set_virtual_chunk_container(
        icechunk.VirtualChunkContainer("s3://elsewhere/", icechunk.s3_store())
    )
    icechunk.Repository.open(other.storage, config=config).save_config()
    assert kept_repository(store, Access()) is not kept
    # what the commit wrote is lost from storage: a reader must see it, whatever the
    # committing process holds in memory
    for manifest in (tmp_path / "shared.icechunk" / "manifests").iterdir():
        manifest.write_bytes(b"lost")
    with pytest.raises(Exception):  # noqa: B017 (Icechunk's error, whichever it is)
        open_store_dataset(store, Access(), group="a", snapshot=outcome.snapshot).load()


def test_a_dataset_is_never_put_under_an_array(tmp_path):
    """A group path whose parent is someone's array is refused, as Zarr refuses it."""
    store = normalize_url(str(tmp_path / "shared.icechunk"))
    repo = icechunk.Repository.create(
        icechunk.local_filesystem_storage(str(tmp_path / "shared.icechunk"))
    )
    session = repo.writable_session("main")
    zarr.open_group(session.store, mode="w").create_array("m", shape=(2,), dtype="i4")[:] = 1
    theirs = session.commit("their array")
    plan, _ = _plan(tmp_path, 2)
    prefix = prefix_of(normalize_url(str(tmp_path / "v0.bin")))
    with pytest.raises(CommitError, match="m/ is an array, not a group"):
        _commit(plan, store, [prefix], group="m/a")
    assert repo.lookup_branch("main") == theirs
    assert repo.list_branches() == {"main"}  # the failed commit's branch is gone
