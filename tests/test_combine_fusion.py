"""Fusing parts: each part combined along its own dimension, the parts merged by variable,
coordinates checked to agree, clashing names refused unless renamed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from archives import fusion_parts, levels

from nc2ice.access import Access, file_url
from nc2ice.combine.fusion import combine_parts, disagreement
from nc2ice.errors import CombineError
from nc2ice.scan.scanner import scan_file


def _dataset(rename: dict | None = None, **settings) -> dict:
    return {
        "concat_dim": "time",
        "parts": {
            "temperature": {"sources": ["t/*.nc"]},
            "salinity": {"sources": ["s/*.nc"], "rename": rename or {}},
        },
        **settings,
    }


def _manifests(files: dict[str, list[Path]]) -> dict[str, list]:
    access = Access()
    return {
        part: [(f.stem, scan_file(file_url(f), access, inline_limit=0)) for f in paths]
        for part, paths in files.items()
    }


RENAMED = {"thetao": "thetao_model2"}


def test_parts_are_fused_by_variable_along_their_own_dimensions(tmp_path):
    files = fusion_parts(tmp_path)
    plan = combine_parts(_manifests(files), _dataset(RENAMED))
    assert set(plan.arrays) == {"thetao", "thetao_model2", "so", "time", "time_bnds", "lat", "lon"}
    assert plan.files == ["thetao_2000", "thetao_2001", "so_0", "so_1", "so_2"]
    assert plan.arrays["thetao"].shape == plan.arrays["so"].shape == (24, 6, 8)
    assert plan.arrays["thetao_model2"].template.name == "thetao_model2"
    # the renamed variable's references still read the source's own 'thetao'
    assert {p.var.path for p in plan.arrays["thetao_model2"].parts} == {"thetao"}
    fusion = plan.fusion
    assert fusion["parts"]["salinity"]["files"] == ["so_0", "so_1", "so_2"]
    assert fusion["shared"]["time"] == ["temperature", "salinity"]
    assert fusion["shared"]["lat"] == ["temperature", "salinity"]
    assert "thetao_model2" in fusion["parts"]["salinity"]["variables"]
    # the store keeps the first part's time encoding
    assert plan.arrays["time"].template.attrs["units"] == "days since 2000-01-01"


def test_a_data_variable_in_two_parts_is_refused_unless_renamed(tmp_path):
    files = fusion_parts(tmp_path)
    with pytest.raises(CombineError) as caught:
        combine_parts(_manifests(files), _dataset())
    message = str(caught.value)
    assert "'thetao'" in message and "'temperature'" in message and "'salinity'" in message
    assert "rename" in message


def test_a_shifted_grid_is_refused_naming_coordinate_parts_and_where(tmp_path):
    files = fusion_parts(tmp_path, lat_shift=0.5)
    with pytest.raises(CombineError) as caught:
        combine_parts(_manifests(files), _dataset(RENAMED))
    message = str(caught.value)
    assert "coordinate 'lat'" in message
    assert "part 'temperature'" in message and "part 'salinity'" in message
    assert "index [0]" in message and "-75.0" in message and "-74.5" in message
    assert "coordinate_tolerance" in message


def test_a_tolerance_accepts_small_float_differences_and_keeps_the_first_parts(tmp_path):
    files = fusion_parts(tmp_path, lat_shift=1e-7)
    manifests = _manifests(files)
    with pytest.raises(CombineError, match="coordinate 'lat'"):
        combine_parts(manifests, _dataset(RENAMED))
    for tolerance in (1e-6, {"lat": 1e-6}):
        plan = combine_parts(_manifests(files), _dataset(RENAMED, coordinate_tolerance=tolerance))
        assert plan.arrays["lat"].data[0] == -75.0  # the first part's values
    with pytest.raises(CombineError, match="coordinate 'lat'"):
        combine_parts(_manifests(files), _dataset(RENAMED, coordinate_tolerance={"lon": 1}))


def test_parts_must_cover_the_same_steps_of_the_concatenated_coordinate(tmp_path):
    files = fusion_parts(tmp_path, start=2001)  # salinity: 2001-2002, temperature 2000-2001
    with pytest.raises(CombineError) as caught:
        combine_parts(_manifests(files), _dataset(RENAMED))
    message = str(caught.value)
    assert "coordinate 'time'" in message and "index [0]" in message
    assert "thetao_2000" in message  # the file of the first part where they differ


def test_a_rename_of_a_coordinate_or_of_nothing_is_refused(tmp_path):
    files = fusion_parts(tmp_path)
    with pytest.raises(CombineError, match="'lat': it is a coordinate"):
        combine_parts(_manifests(files), _dataset({**RENAMED, "lat": "lat2"}))
    with pytest.raises(CombineError, match="'salt': it has no such variable"):
        combine_parts(_manifests(files), _dataset({**RENAMED, "salt": "s"}))


def test_disagreement_decodes_times_and_compares_units():
    days = {"units": "days since 2000-01-01", "calendar": "standard"}
    hours = {"units": "hours since 1999-12-31", "calendar": "gregorian"}
    labels = ("a", "b")
    assert (
        disagreement(np.array([0.0, 1.0]), days, np.array([24.0, 48.0]), hours, 0, labels) is None
    )
    found = disagreement(np.array([0.0, 1.0]), days, np.array([24.0, 60.0]), hours, 0, labels)
    assert found is not None and found[1] == (1,)
    metres, cm = {"units": "m"}, {"units": "cm"}
    found = disagreement(np.array([1.0]), metres, np.array([1.0]), cm, 0, labels)
    assert found is not None and "units" in found[0]


def test_parts_may_run_along_different_dimensions(tmp_path):
    files = fusion_parts(tmp_path)
    files["levels"] = levels(tmp_path / "levels")
    dataset = _dataset(RENAMED)
    dataset["parts"]["levels"] = {"sources": ["l/*.nc"], "concat_dim": "depth"}
    plan = combine_parts(_manifests(files), dataset)
    assert plan.arrays["kz"].shape == (4, 6, 8) and plan.arrays["kz"].axis == 0
    assert plan.fusion["shared"]["lat"] == ["temperature", "salinity", "levels"]
    assert list(plan.arrays["depth"].data) == [5.0, 15.0, 25.0, 50.0]
