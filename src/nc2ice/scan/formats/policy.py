"""Which variables a scan loads into the manifest instead of referencing."""

from __future__ import annotations

from collections.abc import Iterable

from nc2ice.model.manifest import Variable

# Coordinates and bounds are always loaded (up to this size): ordering the files and
# harmonising their time encodings needs their values, and readers want them in one piece.
COORDINATE_CAP = 64 << 20
# Variables that cannot be referenced (strings, compact layout, unknown filters) are loaded up
# to this size and left out, with a warning, above it.
AWKWARD_CAP = 16 << 20


def bounds_names(variables: Iterable[Variable]) -> set[str]:
    return {
        f"{v.group}/{v.attrs['bounds']}".lstrip("/")
        for v in variables
        if isinstance(v.attrs.get("bounds"), str)
    }


def should_load(var: Variable, bounds: set[str], inline_limit: int) -> bool:
    is_coordinate = len(var.dims) == 1 and var.dims[0] == var.name
    if var.shape == () or is_coordinate or var.path in bounds:
        return var.nbytes <= COORDINATE_CAP
    return var.nbytes <= inline_limit
