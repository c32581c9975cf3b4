"""A validation's verdict: what was compared, what matched, what was taken on trust.

The parts of a validation (``nc2ice.check.compare``) each give a verdict for their files; the
verdict of the snapshot joins them, checks that together they compared every file the
plan (``nc2ice.store.trust``) asked for, and says what the rest was taken on trust from.  Light
on purpose: the job that joins the parts imports nothing of the data stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nc2ice.store import trust


@dataclass
class Validation:
    """The verdict of a validation, or of one part of it."""

    dataset: str
    store: str
    snapshot: str = ""
    files_compared: list[str] = field(default_factory=list)
    files_rechecked: list[str] = field(default_factory=list)
    trusted: dict[str, Any] = field(default_factory=dict)  # files vouched for, and by what
    variables_checked: list[str] = field(default_factory=list)
    chunks_checked: int = 0
    values_compared: int = 0
    attributes_compared: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    dtype_differences: dict[str, dict[str, str]] = field(default_factory=dict)
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    changed_sources: dict[str, str] = field(default_factory=dict)
    not_in_store: dict[str, str] = field(default_factory=dict)
    what_commit_did: dict[str, Any] = field(default_factory=dict)
    parts: int = 1

    @property
    def passed(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, **self.__dict__}


def compare_all(commit: dict[str, Any]) -> dict[str, Any]:
    files = [f["file_id"] for f in commit["files"]]
    return trust.plan(files, [], None, seed=commit["snapshot"], recheck=0, parts=1)


def start(commit: dict[str, Any]) -> Validation:
    result = Validation(
        dataset=commit["dataset"], store=commit["store"], snapshot=commit["snapshot"]
    )
    report = commit.get("report", {})
    result.not_in_store = report.get("dropped_variables", {})
    return result


def combine(commit: dict[str, Any], parts: list[dict[str, Any]]) -> Validation:
    """The validation of a snapshot from the verdicts of its parts, and what it took on trust."""
    result = start(commit)
    plan = commit.get("validation_plan") or compare_all(commit)
    rechecked = set(plan["recheck"])
    done = sorted(f for part in parts for f in part.get("files_compared", []))
    if len(parts) != len(plan["parts"]) or done != sorted(plan["compare"] + plan["recheck"]):
        raise ValueError(  # a verdict must never pass on less than its plan
            f"{commit['dataset']}: the validation's parts compared {len(done)} files in "
            f"{len(parts)} part(s); the plan has {len(plan['parts'])} part(s) and "
            f"{len(plan['compare']) + len(plan['recheck'])} files"
        )
    checked: set[str] = set()
    for part in parts:
        for key in ("chunks_checked", "values_compared", "attributes_compared"):
            setattr(result, key, getattr(result, key) + part.get(key, 0))
        result.mismatches += part.get("mismatches", [])
        result.dtype_differences.update(part.get("dtype_differences", {}))
        result.changed_sources.update(part.get("changed_sources", {}))
        checked |= set(part.get("variables_checked", []))
        for file_id in part.get("files_compared", []):
            kind = result.files_rechecked if file_id in rechecked else result.files_compared
            kind.append(file_id)
    result.variables_checked = sorted(checked)
    result.trusted = {
        "snapshot": plan["trusted"]["snapshot"],
        "files": len(plan["trusted"]["files"]),
    }
    result.parts = len(parts)
    result.skipped_files = commit.get("skipped", [])
    report = commit.get("report", {})
    result.what_commit_did = {
        key: report.get(key)
        for key in (
            "files_as_is",
            "files_split",
            "files_copied",
            "copied_bytes",
            "copied_why",
            "copied_variables",
            "loaded_arrays",
            "grids",
            "dtype_differences",
            "units_converted",
            "notes",
        )
    }
    for file_id, what in result.changed_sources.items():
        detail = f"the source changed since the commit ({what}); a rerun rescans it"
        if not any(m["file"] == file_id and not m["variable"] for m in result.mismatches):
            result.mismatches.append({"variable": "", "file": file_id, "detail": detail})
    return result
