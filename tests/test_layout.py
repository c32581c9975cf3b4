"""The package's layout is the pipeline (issue 16): a folder per stage, each saying what it
takes and gives, and imports that run one way only, from the steps down through the stages
(check, store, combine, scan, sources) to the shared model and the plumbing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "nc2ice"
# Each stage may import the stages before it, never one after it.
STAGES = ["sources", "scan", "combine", "store", "check"]
BOTTOM = "model and plumbing"  # nc2ice.model and the top-level helper modules
TOP = ("steps", "bundles", "cli", "hpc", "__init__")  # what the workflow and users call


def _layer(module: str) -> int:
    """0 for the model and the plumbing, 1.. for the stages in order, 9 for the top."""
    parts = module.split(".")[1:]  # without "nc2ice"
    head = parts[0] if parts else "__init__"
    if head in STAGES:
        return 1 + STAGES.index(head)
    if head in TOP:
        return 9
    return 0


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(p for p in parts if p != "__init__") or "nc2ice"] = path
    return found


def _imports(path: Path, module: str) -> set[str]:
    """The nc2ice modules a module imports (at the top, or inside a function)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("nc2ice")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            if base.startswith("nc2ice"):
                found |= {
                    f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                    for a in node.names
                }
    return found


MODULES = _modules()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_stage_imports_a_later_one(module):
    mine = _layer(module)
    later = sorted(
        other
        for other in _imports(MODULES[module], module)
        if _layer(other) > mine and not (mine == 0 and other == "nc2ice")
    )
    assert not later, f"{module} (layer {mine}) imports later ones: {later}"


@pytest.mark.parametrize("stage", [*STAGES, "model", "hpc"])
def test_every_stage_says_what_it_takes_and_gives(stage):
    doc = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text())) or ""
    assert len(doc.split()) >= 12, f"nc2ice.{stage} needs a docstring saying what it takes/gives"


def test_no_two_modules_share_a_name_across_stages():
    """A module's name says what it holds: the same name in two places would be mistaken."""
    names: dict[str, list[str]] = {}
    for module in MODULES:
        leaf = module.rpartition(".")[2]
        if leaf not in ("nc2ice", *STAGES, "model", "hpc", "formats"):
            names.setdefault(leaf, []).append(module)
    assert {n: m for n, m in names.items() if len(m) > 1} == {}


def test_the_design_doc_pictures_every_module():
    """docs/design.md opens with the layout; a module it does not show is one it hides."""
    design = (PACKAGE.parents[1] / "docs" / "design.md").read_text()
    shown = set(re.findall(r"[\w]+\.py", design.split("```")[1]))
    missing = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and path.name not in shown
    )
    assert missing == [], f"docs/design.md's layout picture does not show {missing}"
