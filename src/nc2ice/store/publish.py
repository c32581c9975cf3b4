"""Publishing: ``main`` moves to a validated snapshot by compare-and-swap, and the snapshot is
tagged; a snapshot that failed validation is marked and kept on its branch.

If ``main`` moved meanwhile, commits that changed the dataset's group make publishing refuse,
naming them (unless they hold the very same inputs); others (datasets in their own groups of a
shared repository) are kept, and the same change is written again on top of them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import icechunk

from nc2ice.errors import CommitError
from nc2ice.store.repository import BRANCH, FAILED_TAG, group_at, last_commit, tag_of, touched
from nc2ice.store.snapshot import Outcome

log = logging.getLogger(__name__)
PUBLISH_TRIES = 5  # how often publishing writes its change again on a main that moved


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
        try:
            repo.reset_branch(BRANCH, outcome.snapshot, from_snapshot_id=outcome.base)
            break
        except icechunk.IcechunkError:
            if _published(repo, outcome.snapshot, outcome.base):
                break  # a rerun after a kill: main holds it already
            tip = repo.lookup_branch(BRANCH)
            same = _same_inputs_on(repo, dataset, group, outcome.snapshot, tip)
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


def _same_inputs_on(repo: icechunk.Repository, dataset: str, group: str, snapshot: str, tip: str):
    """The dataset's last commit on ``tip`` if it holds the same inputs as ``snapshot``."""
    found = last_commit(repo, dataset, tip, group)
    digest = dict(repo.lookup_snapshot(snapshot).metadata or {}).get("input_digest")
    return found[0] if found and found[1].get("input_digest") == digest else None


def _published(repo: icechunk.Repository, snapshot: str, base: str | None) -> bool:
    """Whether ``snapshot`` is on main already (a rerun after a kill): it would be among the
    commits after its ``base``."""
    for info in repo.ancestry(branch=BRANCH):
        if info.id == snapshot:
            return True
        if info.id == base:
            break
    return False


def _refuse_if_touched(repo, dataset: str, group: str, outcome: Outcome, tip: str) -> None:
    if outcome.change.action == "created" and group and group_at(repo, tip, group) is None:
        return  # a new group that nobody made meanwhile (comparing the snapshots costs more)
    try:
        changed = touched(repo, outcome.base, tip, group)
    except icechunk.IcechunkError:
        raise CommitError(
            f"{dataset}: main was moved to {tip}, which does not descend from {outcome.base} "
            f"(a rollback?); nothing was published. The validated snapshot {outcome.snapshot} "
            f"stays on branch {outcome.branch}: run again to commit on top of main"
        ) from None
    if not changed:
        return
    found = last_commit(repo, dataset, tip, group)  # the tip may be an index's commit
    other = repo.lookup_snapshot(found[0] if found else tip)
    raise CommitError(
        f"another run committed snapshot {other.id} ({other.message!r}) to {BRANCH!r} while this "
        f"one was writing or validating, and it changed {dataset}'s arrays ({changed[0]}); "
        f"nothing of this run was published (its snapshot {outcome.snapshot} stays on branch "
        f"{outcome.branch}): run again to commit on top of it"
    )


def _drop_branch(repo: icechunk.Repository, branch: str | None) -> None:
    if branch and tag_of(repo, branch, branch=True):
        repo.delete_branch(branch)


def _tag(repo: icechunk.Repository, tag: str | None, snapshot: str) -> str | None:
    if tag is None:
        return None
    if (found := tag_of(repo, tag)) is not None:
        if found == snapshot:  # a rerun after a kill made it already
            return tag
        tag = f"{tag}-{uuid.uuid4().hex[:4]}"
    repo.create_tag(tag, snapshot)
    return tag


def mark_failed(repo: icechunk.Repository, snapshot: str) -> None:
    """Remember that ``snapshot`` failed validation (a tag: its branch keeps its name)."""
    if tag_of(repo, f"{FAILED_TAG}{snapshot}") is None:
        repo.create_tag(f"{FAILED_TAG}{snapshot}", snapshot)
