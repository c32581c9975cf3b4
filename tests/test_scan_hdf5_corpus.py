"""Valid but unusual HDF5 (issue 14, item 20): each file reads back equal or is refused in one
line, never a crash.

A session-scoped fixture writes a corpus of small edge-case files with h5py, netCDF4 and
h5netcdf.  Each goes through the package as the workflow takes a one-file dataset (scan, the
manifest written and read back, combine, commit to a local Icechunk store, open as a reader
would), and then either every variable the store holds equals h5netcdf's read of the source
(netCDF4's where h5netcdf cannot open it) and every variable left out is named in the notes
with a reason, or the run raised an ``Nc2IceError`` in one line naming the file.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr
import zarr
from conftest import commit

from nc2ice.access import Access, normalize_url, prefix_of
from nc2ice.check.compare import DECODING_ATTRS
from nc2ice.check.equality import decode_packed, equal, same_attribute
from nc2ice.combine.plan import Plan, combine
from nc2ice.errors import Nc2IceError
from nc2ice.model.chunks import read_region
from nc2ice.model.manifest import read_manifest, write_manifest
from nc2ice.scan.formats.hdf5 import why_not_kept
from nc2ice.scan.scanner import scan_file
from nc2ice.store.open import open_store_dataset, restore_attributes
from nc2ice.store.repository import open_repository
from nc2ice.store.snapshot import attribute_types

CORPUS: dict[str, Callable[[Path], None]] = {}


def corpus(fn: Callable[[Path], None]) -> Callable[[Path], None]:
    CORPUS[fn.__name__] = fn
    return fn


def _nc(path: Path):
    import netCDF4

    return netCDF4.Dataset(path, "w", format="NETCDF4")


# -- empty and scalar datasets -------------------------------------------------------------


@corpus
def empty_1d_chunked_unlimited(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("x", shape=(0,), maxshape=(None,), chunks=(4,), dtype="f4")


@corpus
def empty_1d_contiguous(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("x", shape=(0,), dtype="i4")


@corpus
def empty_netcdf_unlimited_time(path: Path) -> None:
    """A netCDF4 file whose record dimension has no records yet (a run killed early)."""
    with _nc(path) as nc:
        nc.createDimension("time", None)
        nc.createDimension("lat", 3)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        nc.createVariable("lat", "f4", ("lat",))[:] = [1, 2, 3]
        tas = nc.createVariable("tas", "f4", ("time", "lat"), zlib=True, fill_value=1e20)
        tas.units = "K"


@corpus
def empty_along_second_axis(path: Path) -> None:
    with _nc(path) as nc:
        nc.createDimension("time", 4)
        nc.createDimension("station", 0)
        nc.createVariable("time", "f8", ("time",))[:] = np.arange(4.0)
        nc["time"].units = "days since 2000-01-01"
        nc.createVariable("obs", "f4", ("time", "station"))
        nc.createVariable("obs_chunked", "i2", ("time", "station"), chunksizes=(2, 1))


@corpus
def empty_3d_middle_axis_h5py(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("c", shape=(3, 0, 4), dtype="f8")
        f.create_dataset(
            "k", shape=(3, 0, 4), maxshape=(3, None, 4), chunks=(1, 1, 4), compression="gzip"
        )
        f.create_dataset("u", shape=(0, 0), maxshape=(None, None), chunks=(2, 2), dtype="u1")


@corpus
def scalars_contiguous_and_compact(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f["f"] = np.float64(2.5)
        f["i"] = np.int16(-7)
        f["s"] = np.bytes_(b"fixed")
        f.create_dataset("v", data="variable length", dtype=h5py.string_dtype())
        for name, value, htype in (
            (b"compact_f", np.array(1.25), h5py.h5t.IEEE_F64LE),
            (b"compact_u", np.array(250, dtype="u1"), h5py.h5t.STD_U8LE),
        ):
            space = h5py.h5s.create(h5py.h5s.SCALAR)
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_layout(h5py.h5d.COMPACT)
            dsid = h5py.h5d.create(f.id, name, htype, space, dcpl=dcpl)
            dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, value)
        f["compact_f"].attrs["units"] = "m"


@corpus
def scalar_only_netcdf(path: Path) -> None:
    with _nc(path) as nc:
        nc.createVariable("height", "f8")[...] = 2.0
        nc["height"].units = "m"
        nc.createVariable("member", "i4")[...] = 3
        nc.title = "only scalars"


@corpus
def compact_array(path: Path) -> None:
    with h5py.File(path, "w") as f:
        space = h5py.h5s.create_simple((5,))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        dsid = h5py.h5d.create(f.id, b"small", h5py.h5t.STD_I32BE, space, dcpl=dcpl)
        dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, np.arange(5, dtype=">i4"))


# -- dimension scales, groups ---------------------------------------------------------------


@corpus
def scale_attached_twice(path: Path) -> None:
    """One scale on both axes of a square matrix, and a scale attached twice to one axis."""
    with h5py.File(path, "w") as f:
        x = f.create_dataset("x", data=np.arange(4.0))
        x.make_scale("x")
        y = f.create_dataset("y", data=np.arange(4.0) * 10)
        y.make_scale("y")
        m = f.create_dataset("m", data=np.arange(16.0).reshape(4, 4))
        m.dims[0].attach_scale(x)
        m.dims[1].attach_scale(x)
        v = f.create_dataset("v", data=np.arange(4, dtype="i4"))
        v.dims[0].attach_scale(x)
        v.dims[0].attach_scale(y)


@corpus
def scales_on_several_variables_netcdf(path: Path) -> None:
    with _nc(path) as nc:
        nc.createDimension("n", 3)
        nc.createVariable("n", "i4", ("n",))[:] = [10, 20, 30]
        for i in range(4):
            nc.createVariable(f"v{i}", "f4", ("n", "n"))[:] = np.full((3, 3), i, dtype="f4")


@corpus
def nested_groups_netcdf(path: Path) -> None:
    with _nc(path) as nc:
        nc.title = "root"
        group = nc
        for depth in range(5):
            group = group.createGroup(f"level{depth}")
            group.setncattr("depth", depth)
            group.createDimension(f"d{depth}", depth + 1)
            var = group.createVariable("values", "f4", (f"d{depth}",))
            var[:] = np.arange(depth + 1, dtype="f4") + depth
            var.long_name = f"values at depth {depth}"


@corpus
def nested_groups_h5py(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("a/b/c/d/e/deep", data=np.arange(6, dtype="i8").reshape(2, 3))
        f["a"].attrs["note"] = "group a"
        f.create_dataset("a/b/shallow", data=np.linspace(0, 1, 5), chunks=(2,))
        f.create_group("empty/group")


@corpus
def inherited_dimension_from_parent_group(path: Path) -> None:
    with _nc(path) as nc:
        nc.createDimension("x", 4)
        nc.createVariable("x", "f8", ("x",))[:] = np.arange(4.0)
        child = nc.createGroup("child")
        child.createVariable("y", "i4", ("x",))[:] = np.arange(4) * 2


# -- fill values ------------------------------------------------------------------------------


def _partly_written(nc, name: str, dtype, fill, **kw) -> None:
    """A chunked variable whose second chunk the file never wrote."""
    var = nc.createVariable(name, dtype, ("n",), chunksizes=(4,), fill_value=fill, **kw)
    var[:4] = np.arange(4).astype(dtype)


def _n(nc, size: int = 8) -> None:
    nc.createDimension("n", size)


@corpus
def fill_none_and_default(path: Path) -> None:
    with _nc(path) as nc:
        _n(nc)
        _partly_written(nc, "default_fill", "f4", None)
        _partly_written(nc, "no_fill", "i4", False)
        _partly_written(nc, "default_fill_u8", "u8", None)


@corpus
def fill_nan_and_infinities(path: Path) -> None:
    with _nc(path) as nc:
        _n(nc)
        _partly_written(nc, "nan", "f4", np.float32("nan"))
        _partly_written(nc, "pinf", "f8", np.inf)
        _partly_written(nc, "ninf", "f4", -np.inf)


@corpus
def fill_integers(path: Path) -> None:
    with _nc(path) as nc:
        _n(nc)
        _partly_written(nc, "i1", "i1", np.int8(-127))
        _partly_written(nc, "i2", "i2", np.int16(-999))
        _partly_written(nc, "i8", "i8", np.int64(-(2**62)))
        _partly_written(nc, "u1", "u1", np.uint8(255))
        _partly_written(nc, "u4", "u4", np.uint32(4_000_000_000))
        _partly_written(nc, "u8", "u8", np.uint64(2**64 - 1))


@corpus
def fill_big_endian(path: Path) -> None:
    with _nc(path) as nc:
        _n(nc)
        _partly_written(nc, "f", "f4", np.float32(-9.5), endian="big")
        _partly_written(nc, "i", "i4", np.int32(-1), endian="big")


@corpus
def fill_strings(path: Path) -> None:
    with _nc(path) as nc:
        _n(nc, 3)
        names = nc.createVariable("names", str, ("n",), fill_value="missing")
        names[0] = "first"
        names[2] = "third"
        nc.createDimension("c", 4)
        chars = nc.createVariable("chars", "S1", ("n", "c"), fill_value=b"-")
        chars[0] = np.array([b"a", b"b", b"c", b"d"])


@corpus
def fill_compound_tuple(path: Path) -> None:
    """A compound dataset whose _FillValue attribute is a compound value (a tuple)."""
    rec = np.dtype([("a", "<f4"), ("b", "<i2")])
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("rec", shape=(4,), dtype=rec, fillvalue=np.array((-1.0, -1), rec))
        ds[:2] = np.array([(1.5, 1), (2.5, 2)], dtype=rec)
        ds.attrs["_FillValue"] = np.array((-1.0, -1), dtype=rec)
        ds.attrs["long_name"] = "records"


@corpus
def compound_netcdf(path: Path) -> None:
    """A netCDF4 compound type (netCDF4-python cannot give it a fill value), partly written."""
    with _nc(path) as nc:
        _n(nc, 3)
        rec = np.dtype([("lo", "<f8"), ("hi", "<f8")])
        kind = nc.createCompoundType(rec, "range_t")
        var = nc.createVariable("range", kind, ("n",))
        var[0] = np.array((1.0, 2.0), rec)


@corpus
def fill_attribute_differs_from_hdf5_fillvalue(path: Path) -> None:
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("v", shape=(8,), chunks=(4,), dtype="f4", fillvalue=-1.0)
        ds[:4] = np.arange(4.0)
        ds.attrs["_FillValue"] = np.float32(-2.0)
        ds2 = f.create_dataset("w", shape=(8,), chunks=(4,), dtype="i2", fillvalue=7)
        ds2[4:] = np.arange(4)


@corpus
def missing_value_and_valid_range(path: Path) -> None:
    with _nc(path) as nc:
        _n(nc)
        var = nc.createVariable("t", "f4", ("n",))
        var.missing_value = np.float32(-99.0)
        var.valid_range = np.array([0, 50], dtype="f4")
        var[:] = np.array([1, -99, 3, 70, 5, 6, 7, 8], dtype="f4")


# -- packing, byte order, numeric types --------------------------------------------------------


@corpus
def packed_integers(path: Path) -> None:
    with _nc(path) as nc:
        nc.createDimension("time", 6)
        nc.createVariable("time", "f8", ("time",))[:] = np.arange(6.0)
        nc["time"].units = "days since 2000-01-01"
        for name, dtype, fill in (("b", "i1", -128), ("s", "i2", -32767), ("u", "u1", 255)):
            var = nc.createVariable(name, dtype, ("time",), fill_value=fill)
            var.set_auto_maskandscale(False)
            var.scale_factor = np.float32(0.5)
            var.add_offset = np.float32(10.0)
            var[:] = np.array([0, 1, 2, fill, 4, 5], dtype=dtype)


@corpus
def big_endian_data(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("f", data=np.arange(12, dtype=">f4").reshape(3, 4), chunks=(1, 4))
        f.create_dataset("i", data=np.arange(12, dtype=">i8"), compression="gzip", chunks=(5,))
        f.create_dataset("d", data=np.linspace(0, 1, 7).astype(">f8"))


@corpus
def many_numeric_types(path: Path) -> None:
    with h5py.File(path, "w") as f:
        for dtype in ("i1", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"):
            f.create_dataset(f"v_{dtype}", data=np.arange(10).astype(dtype), chunks=(3,))


@corpus
def complex_numbers(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("z", data=np.array([1 + 2j, 3 - 4j, 0.5j], dtype="c16"))


@corpus
def filters_of_every_kind(path: Path) -> None:
    data = np.arange(40, dtype="f4").reshape(4, 10)
    with h5py.File(path, "w") as f:
        f.create_dataset("fletcher", data=data, chunks=(2, 5), fletcher32=True)
        f.create_dataset("shuffle_gzip", data=data, chunks=(2, 5), shuffle=True, compression=9)
        f.create_dataset("scaleoffset", data=data.astype("i4"), chunks=(2, 5), scaleoffset=0)
        f.create_dataset("lzf", data=data, chunks=(2, 5), compression="lzf")


@corpus
def chunks_larger_than_data(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("v", data=np.arange(10.0), chunks=(64,), maxshape=(None,))
        f.create_dataset("w", data=np.arange(15.0).reshape(3, 5), chunks=(4, 4), maxshape=(8, 8))


@corpus
def only_some_chunks_written(path: Path) -> None:
    with h5py.File(path, "w") as f:
        v = f.create_dataset("v", shape=(6, 6), chunks=(2, 2), dtype="f4", compression="gzip")
        v[0:2, 0:2] = 1.0
        v[4:6, 2:4] = 2.0
        w = f.create_dataset("w", shape=(100,), chunks=(10,), dtype="i2", fillvalue=-5)
        w[95:] = 9


# -- types that are not plain numbers ----------------------------------------------------------


@corpus
def enum_and_boolean(path: Path) -> None:
    with h5py.File(path, "w") as f:
        kind = h5py.enum_dtype({"RED": 0, "GREEN": 1, "BLUE": 42}, basetype="u1")
        f.create_dataset("colour", data=np.array([0, 1, 42, 1], dtype="u1"), dtype=kind)
        f.create_dataset("flag", data=np.array([True, False, True]))


@corpus
def enum_netcdf(path: Path) -> None:
    with _nc(path) as nc:
        _n(nc, 4)
        kind = nc.createEnumType("u1", "cloud_t", {"clear": 0, "cloudy": 1, "missing": 255})
        var = nc.createVariable("cloud", kind, ("n",), fill_value=255)
        var[:] = np.array([0, 1, 0, 1], dtype="u1")


@corpus
def opaque(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("blob", data=np.array([b"\x00\x01\x02\x03", b"abcd"], dtype="V4"))


@corpus
def fixed_length_strings(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("names", data=np.array([b"alpha", b"be", b"gamma12"], dtype="S7"))
        f.create_dataset("chunked_names", data=np.array([b"x" * 5] * 10, dtype="S5"), chunks=(4,))
        utf8 = f.create_dataset("utf8", shape=(2,), dtype=h5py.string_dtype("utf-8", 4))
        text = np.array(["ä".encode(), b"bc"], dtype="S4")
        utf8.id.write(h5py.h5s.ALL, h5py.h5s.ALL, text, mtype=utf8.id.get_type())


@corpus
def vlen_sequences(path: Path) -> None:
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("ragged", shape=(3,), dtype=h5py.vlen_dtype(np.int32))
        ds[0], ds[1], ds[2] = [1], [2, 3], []
        f.create_dataset("plain", data=np.arange(3.0))


@corpus
def vlen_netcdf(path: Path) -> None:
    with _nc(path) as nc:
        _n(nc, 2)
        kind = nc.createVLType("i4", "ragged_t")
        var = nc.createVariable("ragged", kind, ("n",))
        var[0] = np.array([1, 2, 3], dtype="i4")
        var[1] = np.array([4], dtype="i4")
        nc.createVariable("names", str, ("n",))[:] = np.array(["a", "bcd"], dtype=object)


@corpus
def compound_records(path: Path) -> None:
    with h5py.File(path, "w") as f:
        plain = np.dtype([("x", "<f8"), ("n", "<i4")])
        f.create_dataset("plain", data=np.array([(1.0, 1), (2.0, 2)], dtype=plain))
        nested = np.dtype([("p", plain), ("flag", "u1")])
        f.create_dataset("nested", data=np.array([((1.0, 1), 1)], dtype=nested))
        arrays = np.dtype([("v", "<f4", (3,))])
        f.create_dataset("with_array", data=np.zeros(2, dtype=arrays))
        f.create_dataset("big_endian", data=np.array([(1, 2)], dtype=[("a", ">i4"), ("b", ">f8")]))


@corpus
def references(path: Path) -> None:
    with h5py.File(path, "w") as f:
        target = f.create_dataset("target", data=np.arange(5.0))
        refs = f.create_dataset("refs", shape=(2,), dtype=h5py.ref_dtype)
        refs[0], refs[1] = target.ref, f.ref
        regions = f.create_dataset("regions", shape=(1,), dtype=h5py.regionref_dtype)
        regions[0] = target.regionref[1:3]


# -- attributes ---------------------------------------------------------------------------------


@corpus
def attributes_of_odd_types(path: Path) -> None:
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("v", data=np.arange(3.0))
        ds.attrs["ref"] = f.ref
        ds.attrs["refs"] = np.array([f.ref, ds.ref], dtype=h5py.ref_dtype)
        ds.attrs["empty"] = h5py.Empty("f4")
        ds.attrs["empty_string"] = h5py.Empty(h5py.string_dtype())
        ds.attrs["zero_length"] = np.zeros(0, dtype="i4")
        ds.attrs["vlen_strings"] = ["a", "bb", "ccc"]
        ds.attrs["fixed_strings"] = np.array([b"ab", b"cd"], dtype="S2")
        ds.attrs["bool"] = np.True_
        ds.attrs["compound"] = np.array((1, 2.0), dtype=[("a", "i4"), ("b", "f8")])
        ds.attrs["enum"] = np.array(1, dtype=h5py.enum_dtype({"A": 0, "B": 1}, basetype="i1"))
        ds.attrs["matrix"] = np.arange(6).reshape(2, 3)
        ds.attrs["unicode"] = "température ≥ 0"
        ds.attrs["nan_list"] = np.array([np.nan, 1.0])
        ragged = np.empty(2, dtype=object)
        ragged[0], ragged[1] = np.array([1, 2], "i4"), np.array([3], "i4")
        ds.attrs.create("vlen_ints", data=ragged, dtype=h5py.vlen_dtype("i4"))
        f.attrs["Conventions"] = "CF-1.8"
        f.attrs["bytes"] = np.bytes_(b"\xff\xfe not utf8")


@corpus
def attribute_names_and_values_netcdf(path: Path) -> None:
    with _nc(path) as nc:
        _n(nc, 2)
        var = nc.createVariable("v", "f8", ("n",))
        var[:] = [1.0, 2.0]
        var.setncattr("with space", "x")
        var.setncattr("dotted.name", 1)
        var.setncattr_string("string_list", ["a", "b"])
        var.empty_text = ""
        var.bounds = "does_not_exist"
        var.coordinates = "also_missing"


# -- layouts ------------------------------------------------------------------------------------


@corpus
def matlab_v73(path: Path) -> None:
    """As MATLAB's -v7.3 writes: a 512-byte user block, MATLAB_class attributes, char arrays
    as uint16, cell arrays as object references into #refs#."""
    with h5py.File(path, "w", userblock_size=512) as f:
        a = f.create_dataset("A", data=np.arange(6.0).reshape(3, 2))
        a.attrs["MATLAB_class"] = np.bytes_(b"double")
        s = f.create_dataset("name", data=np.array([ord(c) for c in "hello"], dtype="u2")[:, None])
        s.attrs["MATLAB_class"] = np.bytes_(b"char")
        s.attrs["MATLAB_int_decode"] = np.int32(2)
        hidden = f.create_group("#refs#")
        items = [hidden.create_dataset(k, data=np.arange(n + 1.0)) for n, k in enumerate("ab")]
        cell = f.create_dataset("cell", shape=(2, 1), dtype=h5py.ref_dtype)
        cell[0, 0], cell[1, 0] = items[0].ref, items[1].ref
        cell.attrs["MATLAB_class"] = np.bytes_(b"cell")
        b = f.create_dataset("flag", data=np.array([[1, 0, 1]], dtype="u1"))
        b.attrs["MATLAB_class"] = np.bytes_(b"logical")
        empty = f.create_dataset("empty", data=np.array([0, 0], dtype="u8"))
        empty.attrs["MATLAB_class"] = np.bytes_(b"double")
        empty.attrs["MATLAB_empty"] = np.uint8(1)
        st = f.create_group("st")
        st.attrs["MATLAB_class"] = np.bytes_(b"struct")
        st.create_dataset("field", data=np.array([[3.0]]))
    with open(path, "r+b") as raw:  # MATLAB's header text in the user block
        raw.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024")


@corpus
def links_hard_soft_external(path: Path) -> None:
    other = path.with_name(path.stem + "_linked.h5")
    with h5py.File(other, "w") as f:
        f["far"] = np.arange(3.0) + 100
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(4.0)
        f["hard"] = f["data"]
        f["soft"] = h5py.SoftLink("/data")
        f["dangling"] = h5py.SoftLink("/nowhere")
        f["external"] = h5py.ExternalLink(other.name, "/far")


@corpus
def external_raw_storage(path: Path) -> None:
    """Data kept in another file (HDF5 external storage): HDF5 gives no offset in this one."""
    raw = path.with_name(path.stem + ".bin")
    raw.write_bytes(np.arange(8, dtype="<f4").tobytes())
    with h5py.File(path, "w") as f:
        f.create_dataset("ext", shape=(8,), dtype="<f4", external=[(raw.name, 0, 32)])
        f["plain"] = np.arange(3.0)


@corpus
def virtual_dataset(path: Path) -> None:
    source = path.with_name(path.stem + "_source.h5")
    with h5py.File(source, "w") as f:
        f["part"] = np.arange(4.0)
    layout = h5py.VirtualLayout(shape=(8,), dtype="f8")
    layout[0:4] = h5py.VirtualSource(source.name, "part", shape=(4,))
    with h5py.File(path, "w") as f:
        f.create_virtual_dataset("vds", layout, fillvalue=-1.0)
        f["plain"] = np.arange(3.0)


@corpus
def netcdf_time_series_with_bounds_and_phony_dims(path: Path) -> None:
    ds = xr.Dataset(
        {
            "tas": (("time", "x"), np.arange(8, dtype="f4").reshape(4, 2)),
            "time_bnds": (("time", "nv"), np.arange(8.0).reshape(4, 2)),
        },
        coords={"time": ("time", np.arange(4.0), {"bounds": "time_bnds"})},
    )
    ds.time.attrs["units"] = "days since 2000-01-01"
    ds.to_netcdf(path, engine="h5netcdf", unlimited_dims=["time"])
    with h5py.File(path, "a") as f:  # a dataset without scales: netCDF-C names its dims
        f.create_dataset("extra", data=np.arange(6.0).reshape(3, 2))


@corpus
def names_with_odd_characters(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f["with space"] = np.arange(3.0)
        f["dotted.name"] = np.arange(2, dtype="i4")
        f["ünïcode"] = np.arange(2.0)
        f.create_dataset("g r/v", data=np.arange(2.0))


@corpus
def attribute_creation_order_and_many_attributes(path: Path) -> None:
    with h5py.File(path, "w", track_order=True) as f:
        ds = f.create_dataset("v", data=np.arange(3.0), track_order=True)
        for i in range(40):  # more than the compact attribute storage holds: dense storage
            ds.attrs[f"attr_{39 - i:02d}"] = i


@corpus
def kerchunk_style_skipped_filters(path: Path) -> None:
    """Kerchunk's test files: chunks written directly with a filter mask."""
    import hdf5plugin

    with h5py.File(path, "w") as f:
        ds = f.create_dataset("data", (8,), dtype="i4", chunks=(7,), **hdf5plugin.Zstd())
        ds[0:7] = np.arange(7, dtype="i4")
        ds.id.write_direct_chunk((7,), np.array([7] + [0] * 6, dtype="i4").tobytes(), 1)
        two = f.create_dataset("data2", (8,), dtype="i4", chunks=(3,), shuffle=True, compression=4)
        shuffled = np.arange(3, dtype="i4").view("u1").reshape(3, 4).T.copy().tobytes()
        two.id.write_direct_chunk((0,), shuffled, 2)  # shuffled, not deflated
        two.id.write_direct_chunk((3,), np.array([3, 4, 5], dtype="i4").tobytes(), 3)
        two[6:] = np.array([6, 7], dtype="i4")
        small = f.create_dataset("mini", (3, 2), dtype="i4", **hdf5plugin.Blosc())
        small[...] = np.arange(6, dtype="i4").reshape(3, 2)


@corpus
def fill_values_that_are_odd(path: Path) -> None:
    """_FillValue attributes netCDF-C would not write: two values, another type than the
    variable's, out of the variable's range, text on numbers, on a scalar."""
    with h5py.File(path, "w") as f:
        for name, dtype, fill in (
            ("two", "f4", np.array([-1.0, -2.0], dtype="f4")),
            ("double_on_short", "i2", np.float64(-999.0)),
            ("out_of_range", "u1", np.int32(300)),
            ("text_on_float", "f8", np.bytes_(b"none")),
        ):
            ds = f.create_dataset(name, shape=(6,), chunks=(3,), dtype=dtype)
            ds[:3] = np.arange(3)
            ds.attrs["_FillValue"] = fill
        scalar = f.create_dataset("scalar", data=np.float32(-1.0))
        scalar.attrs["_FillValue"] = np.float32(-1.0)
        never = f.create_dataset("never_written_scalar", shape=(), dtype="i4", fillvalue=-7)
        never.attrs["long_name"] = "never written"


@corpus
def null_dataspace_and_array_types(path: Path) -> None:
    """A dataset with a null dataspace (no shape at all), one of a fixed-size array type, and
    one of long doubles (which netCDF and Zarr lack)."""
    with h5py.File(path, "w") as f:
        f.create_dataset("null", data=h5py.Empty("f4"))
        vectors = f.create_dataset("vectors", shape=(2,), dtype=np.dtype("(3,)f4"))
        vectors[0], vectors[1] = np.arange(3, dtype="f4"), np.arange(3, 6, dtype="f4")
        f.create_dataset("plain", data=np.arange(2.0))


@corpus
def long_double(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("ld", data=np.arange(3, dtype=np.longdouble))
        f.create_dataset("plain", data=np.arange(2.0))


@corpus
def unsigned_convention_and_valid_range(path: Path) -> None:
    with _nc(path) as nc:
        nc.createDimension("time", 4)
        time = nc.createVariable("time", "i8", ("time",))
        time.units, time.calendar = "days since 2000-01-01", "noleap"
        time[:] = np.arange(4) * 365
        var = nc.createVariable("b", "i1", ("time",), fill_value=np.int8(-1))
        var.set_auto_maskandscale(False)
        var.setncattr("_Unsigned", "true")
        var.valid_min = np.int8(0)
        var[:] = np.array([1, -2, -1, 100], dtype="i1")
        packed = nc.createVariable("p", "i4", ("time",), zlib=True, fill_value=np.int32(-1))
        packed.set_auto_maskandscale(False)
        packed.scale_factor, packed.add_offset = 0.001, -5.0
        packed[:] = np.array([0, 1000, -1, 2**31 - 1], dtype="i4")


@corpus
def big_endian_everything(path: Path) -> None:
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(
            "v",
            data=np.arange(20, dtype=">i8").reshape(4, 5),
            chunks=(2, 5),
            shuffle=True,
            compression="gzip",
            fillvalue=-1,
        )
        ds.attrs["_FillValue"] = np.array(-1, dtype=">i8")
        ds.attrs["scale_factor"] = np.array(0.5, dtype=">f8")
        f.create_dataset("s", data=np.array(3.25, dtype=">f8"))
        f.create_dataset("u", data=np.arange(4, dtype=">u2"), chunks=(2,), fletcher32=True)


@corpus
def classic_model_netcdf4(path: Path) -> None:
    import netCDF4

    with netCDF4.Dataset(path, "w", format="NETCDF4_CLASSIC") as nc:
        nc.createDimension("time", None)
        nc.createDimension("x", 3)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "hours since 1990-01-01"
        t[:] = [0.0, 1.0]
        v = nc.createVariable("v", "f4", ("time", "x"), zlib=True, fill_value=-1e30)
        v[0, :] = [1, 2, 3]  # the second step was never written
        nc.history = "classic"


@corpus
def time_not_first_and_no_coordinate(path: Path) -> None:
    """A station-by-time layout (time is not the first axis), and a time axis without a
    coordinate variable."""
    with _nc(path) as nc:
        nc.createDimension("station", 2)
        nc.createDimension("time", 3)
        nc.createVariable("obs", "f4", ("station", "time"))[:] = np.arange(6).reshape(2, 3)


@corpus
def no_datasets_at_all(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "nothing but attributes"
        f.create_group("empty").attrs["note"] = "an empty group"


@corpus
def matlab_sparse_struct_and_complex(path: Path) -> None:
    with h5py.File(path, "w", userblock_size=512) as f:
        sparse = f.create_group("S")
        sparse.attrs["MATLAB_class"] = np.bytes_(b"double")
        sparse.attrs["MATLAB_sparse"] = np.uint64(3)
        sparse["data"] = np.array([1.0, 2.0])
        sparse["ir"] = np.array([0, 2], dtype="u8")
        sparse["jc"] = np.array([0, 1, 2], dtype="u8")
        z = f.create_dataset("Z", data=np.array([[1 + 1j, 2 - 2j]], dtype="c16").T)
        z.attrs["MATLAB_class"] = np.bytes_(b"double")
        text = f.create_dataset("chars", data=np.array([[ord("a")], [ord("b")]], dtype="u2"))
        text.attrs["MATLAB_class"] = np.bytes_(b"char")
        sub = f.create_group("#subsystem#")
        sub.create_dataset("MCOS", data=np.zeros((1, 3), dtype="u4"))


@corpus
def names_zarr_reserves(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f["__dunder"] = np.arange(2.0)
        f["zarr.json"] = np.arange(3.0)
        f[".hidden"] = np.arange(2, dtype="i4")
        f.create_group("g").create_dataset("zarr.json", data=np.arange(2.0))
        f.create_dataset(".zattrs/inside", data=np.arange(2.0))


@corpus
def never_written(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("contiguous", shape=(5,), dtype="f4", fillvalue=3.0)
        f.create_dataset("chunked", shape=(6,), chunks=(2,), dtype="i2", fillvalue=-4)
        compressed = f.create_dataset("compressed", shape=(4, 4), chunks=(2, 2), dtype="f8")
        compressed.attrs["_FillValue"] = np.float64(np.nan)


@corpus
def records_of_different_lengths(path: Path) -> None:
    """Record variables that share an unlimited dimension without a coordinate and were
    written to different lengths (one chunk of 1-D data runs past its end)."""
    with _nc(path) as nc:
        nc.createDimension("time", None)
        nc.createDimension("x", 2)
        long = nc.createVariable("long", "f8", ("time",), fill_value=-1.0)
        long[:] = np.arange(5.0)
        short = nc.createVariable("short", "i4", ("time",), chunksizes=(4,))
        short[:2] = [7, 8]
        grid = nc.createVariable("grid", "f4", ("time", "x"), chunksizes=(1, 2))
        grid[:3] = np.ones((3, 2), dtype="f4")


@corpus
def text_that_is_not_utf8(path: Path) -> None:
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("v", data=np.arange(2.0))
        ds.attrs["latin1"] = np.bytes_("température".encode("latin-1"))
        f.attrs["title"] = np.bytes_(b"\xff\xfe")


@corpus
def fill_and_missing_value(path: Path) -> None:
    with _nc(path) as nc:
        _n(nc, 5)
        var = nc.createVariable("both", "i2", ("n",), fill_value=np.int16(-1))
        var.set_auto_maskandscale(False)
        var.missing_value = np.array([-2, -3], dtype="i2")
        var.scale_factor = np.float64(0.25)
        var[:] = np.array([1, -1, -2, -3, 4], dtype="i2")


@corpus
def resized_smaller_and_larger(path: Path) -> None:
    """Datasets resized after they were written: shrunk (stale bytes stay in the edge chunk)
    and grown (the new part never written)."""
    with h5py.File(path, "w") as f:
        shrunk = f.create_dataset("shrunk", data=np.arange(10.0), chunks=(4,), maxshape=(None,))
        shrunk.resize((6,))
        grown = f.create_dataset(
            "grown", data=np.arange(3, dtype="i4"), chunks=(2,), maxshape=(None,)
        )
        grown.resize((7,))
        both = f.create_dataset(
            "both", data=np.ones((4, 4)), chunks=(3, 3), maxshape=(None, None), compression="gzip"
        )
        both.resize((2, 6))


# -- running the corpus ----------------------------------------------------------------------

# h5netcdf 1.8 names the dimension of a netCDF coordinate wrongly when a file also holds a
# dataset without dimension scales (it gives 'time' the phony dimension): netCDF-C is right.
# Text that is not UTF-8: netCDF-C replaces the bad bytes (as the scan does), h5netcdf keeps
# them as surrogates.
NETCDF_C_FIRST = {"netcdf_time_series_with_bounds_and_phony_dims", "text_that_is_not_utf8"}


@pytest.fixture(scope="session")
def corpus_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hdf5-corpus")
    files = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, write in CORPUS.items():
            files[name] = folder / f"{name}.h5"
            write(files[name])
    return files


def _run(path: Path, work: Path, inline_limit: int, url: str = "") -> tuple[str, str, Plan]:
    """The file (or ``url``, a copy of it) through the package as a one-file dataset: the
    store, snapshot and plan."""
    access = Access()
    url = url or normalize_url(str(path))
    manifest = scan_file(url, access, inline_limit=inline_limit)
    write_manifest(manifest, work / "manifest.json")  # the workflow's commit reads it back
    manifest = read_manifest(work / "manifest.json")
    plan = combine(
        [(path.stem, manifest)],
        concat_dim="time",
        max_materialized_fraction=1.0,  # a variable Zarr cannot decode is copied
        reader=lambda var: read_region(var, tuple(slice(0, n) for n in var.shape), access),
    )
    store = normalize_url(str(work / "store.icechunk"))
    snapshot = commit(plan, store, [prefix_of(url)])
    return store, snapshot, plan


def _groups(path: Path) -> list[str]:
    with h5py.File(path, "r") as f:
        found = [""]
        f.visit(lambda name: found.append(name) if isinstance(f.get(name), h5py.Group) else None)
    return found


def _source(path: Path, group: str, **kw) -> xr.Dataset | None:
    """The group as h5netcdf reads it (netCDF4's read where h5netcdf cannot open it)."""
    engines = [("h5netcdf", {"phony_dims": "sort"}), ("netcdf4", {})]
    if path.stem in NETCDF_C_FIRST:
        engines.reverse()
    for engine, options in engines:
        try:
            return xr.open_dataset(path, engine=engine, group=group or None, **options, **kw).load()
        except Exception:  # noqa: BLE001, S112 - the next reader, or only h5py's raw read
            continue
    return None


def _store(store: str, snapshot: str, group: str, plan: Plan) -> xr.Dataset:
    """The group as a reader of the store sees it, with the attribute types the workflow's
    commit records (conftest's commit() does not record them)."""
    ds = open_store_dataset(store, group=group or None, snapshot=snapshot)
    return restore_attributes(ds, attribute_types(plan), group)


def _raw_store(store: str, snapshot: str) -> zarr.Group:
    repo = open_repository(store, Access())
    return zarr.open_group(repo.readonly_session(snapshot_id=snapshot).store, mode="r")


def _left_out(plan: Plan, path: str) -> bool:
    return path in plan.dropped or any(f"left out {path!r}" in note for note in plan.notes)


def _check_store(path: Path, store: str, snapshot: str, plan: Plan) -> list[str]:
    """What differs between the store and the source, as lines."""
    problems = _check_raw(path, store, snapshot, plan)
    for group in _groups(path):
        source = _source(path, group)
        if source is None:
            continue  # no netCDF reader opens it: h5py's raw read was compared
        if any(f"left out group {group!r}" in note for note in plan.notes):
            continue
        stored = _store(store, snapshot, group, plan)
        for name, want in source.variables.items():
            full = f"{group}/{name}".lstrip("/")
            if name not in stored.variables:
                if not _left_out(plan, full):
                    problems.append(f"{full}: not in the store, and no note says why")
                continue
            problems += _variable_problems(full, name, stored.variables[name], want, plan, path)
        if group == "":
            problems += _attribute_problems("/", stored.attrs, source.attrs)
    return problems


def _variable_problems(full: str, name: str, got, want, plan: Plan, path: Path) -> list[str]:
    problems = []
    if got.dims != want.dims:
        problems.append(f"{full}: dims {got.dims} in the store, {want.dims} in the source")
    expected = want.values
    if full in plan.dtype_differences:  # declared: compared decoded in the store's type
        raw = _source(path, full.rpartition("/")[0], mask_and_scale=False)
        expected = decode_packed(raw[name].values, raw[name].attrs, got.dtype)
    elif not _same_dtype(got.dtype, want.dtype):
        problems.append(f"{full}: dtype {got.dtype} in the store, {want.dtype} in the source")
    if not equal(np.asarray(got.values), np.asarray(expected)):
        problems.append(f"{full}: values {got.values!r} != source {want.values!r}")
    return problems + _attribute_problems(full, got.attrs, want.attrs)


def _same_dtype(a: np.dtype, b: np.dtype) -> bool:
    """Equal types; records alike field by field (HDF5 pads records, the store packs them),
    text alike whether fixed-length or not."""
    if a.names or b.names:
        return a.names == b.names and all(a[n] == b[n] for n in a.names or ())
    return a == b or (a.kind in "SUO" and b.kind in "SUO")


def _attribute_problems(where: str, got: dict, want: dict) -> list[str]:
    out = []
    for key in sorted(set(want) - DECODING_ATTRS):
        if key not in got and why_not_kept(want[key]):
            continue  # h5netcdf 1.8 gives what the scan leaves out, and notes (checked apart)
        if key not in got:
            out.append(f"{where}: attribute {key!r} missing in the store")
        elif not same_attribute(got[key], want[key]):
            out.append(f"{where}: attribute {key!r} is {got[key]!r}, {want[key]!r} in the source")
    return out


def _check_raw(path: Path, store: str, snapshot: str, plan: Plan) -> list[str]:
    """Every dataset h5py reads, undecoded, against the store's array, where it holds one."""
    problems = []
    root = _raw_store(store, snapshot)
    with h5py.File(path, "r") as f:
        links: list[str] = []  # every name, soft and external links included
        f.visit_links(links.append)
        for name in links:
            if not isinstance(f.get(name), h5py.Dataset):
                continue
            try:
                stored = root[name]
            except KeyError:
                if not (_pure_dimension(f[name]) or _left_out_anywhere(plan, name)):
                    problems.append(f"{name}: not in the store, and no note says why")
                continue
            got, want = np.asarray(stored[...]), _h5py_values(f[name])
            got = got.astype(got.dtype.newbyteorder("=")) if not got.dtype.names else got
            if got.shape != want.shape and got.ndim == want.ndim:  # padded to its dimension
                got = got[tuple(slice(0, n) for n in want.shape)]
            if not equal(got, want):
                problems.append(f"{name}: raw values {got!r} != h5py's {want!r}")
    return problems


def _pure_dimension(ds: h5py.Dataset) -> bool:
    """A netCDF dimension without a variable (netCDF readers show none, nor does the store)."""
    return str(ds.attrs.get("NAME", b"")).find("This is a netCDF dimension") >= 0


def _left_out_anywhere(plan: Plan, path: str) -> bool:
    """Left out itself, or inside a group that was."""
    parts = path.split("/")
    groups = ["/".join(parts[:i]) for i in range(1, len(parts))]
    return _left_out(plan, path) or any(
        f"left out group {g!r}" in n for g in groups for n in plan.notes
    )


def _h5py_values(ds: h5py.Dataset) -> np.ndarray:
    if h5py.check_string_dtype(ds.dtype) and h5py.check_string_dtype(ds.dtype).length != 1:
        return np.asarray(ds.asstr()[()], dtype=object)
    values = np.asarray(ds[()])
    if values.dtype.names:  # little-endian, as the store keeps records
        return values.astype([(n, values.dtype[n].newbyteorder("<")) for n in values.dtype.names])
    return values.astype(values.dtype.newbyteorder("="))  # a store may keep another order


@pytest.fixture(scope="module")
def served(corpus_files, http_server, http_root) -> str:
    """The corpus on the test HTTP server; its base URL."""
    folder = next(iter(corpus_files.values())).parent
    shutil.copytree(folder, http_root / "corpus", dirs_exist_ok=True)
    return f"{http_server.url}/corpus"


@pytest.mark.parametrize("inline_limit", [0, 8192])
@pytest.mark.parametrize("name", list(CORPUS))
def test_corpus_file_reads_back_or_is_refused_in_one_line(
    corpus_files, tmp_path, name, inline_limit
):
    _check_file(corpus_files[name], tmp_path, inline_limit)


@pytest.mark.parametrize("name", list(CORPUS))
def test_corpus_file_over_http(corpus_files, served, tmp_path, name):
    """The same over HTTP: the scan reads through its block reader, copies come by h5py over
    ranged requests."""
    path = corpus_files[name]
    _check_file(path, tmp_path, 8192, url=f"{served}/{path.name}")


def _check_file(path: Path, work: Path, inline_limit: int, url: str = "") -> None:
    try:
        store, snapshot, plan = _run(path, work, inline_limit, url)
    except Nc2IceError as exc:
        message = str(exc)
        assert "\n" not in message.strip(), message
        assert path.name in message, message
        return
    problems = _check_store(path, store, snapshot, plan)
    assert not problems, "\n".join(problems)


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 30
