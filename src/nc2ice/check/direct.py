"""Direct reads of the sources, independent of the scanner: netCDF-C, the reference reader
(local files by path; remote files up to WHOLE_FILE_BYTES from their bytes, fetched in one
request tied to the version the scan recorded), h5netcdf where netCDF-C cannot (a filter it
lacks, files too large to fetch whole); raw numbers, or decoded as ``xr.open_dataset``
decodes them.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from nc2ice.access import Access, local_path
from nc2ice.errors import AccessError

WHOLE_FILE_BYTES = 32 << 20  # remote files up to this size are fetched in one request
# Attributes that netCDF readers turn into decoding (xarray moves them to .encoding).


TIME_DECODES = ("units", "calendar")


class NeedsH5(Exception):  # noqa: N818 - a request to read the file another way
    """netCDF-C lacks a filter the file uses."""


def fetch(url: str, access: Access) -> bytes | None:
    """A remote file's bytes in one request tied to its recorded version (None for local
    files, read where they are, and for files too large to hold: read in blocks)."""
    if url.startswith("file://"):
        return None
    size = int((access.versions.get(url) or {}).get("size") or 0)
    if 0 < size <= WHOLE_FILE_BYTES:  # one request, tied to the version the scan recorded
        return access.get_ranges(url, [0], [size])[0]
    try:
        reader = access.reader(url, head_bytes=WHOLE_FILE_BYTES, block_bytes=4 << 20)
        if reader.length() > WHOLE_FILE_BYTES:
            return None
        reader.seek(0)
        return reader.read()
    except AccessError:
        raise
    except Exception as exc:  # noqa: BLE001 - obstore raises several types
        raise access.error(url, exc) from None


def is_hdf5(url: str, data: bytes | None) -> bool:
    head = data[:8] if data is not None else local_path(url).open("rb").read(8)
    return head.startswith(b"\x89HDF")


def local_region(region, dims, concat_dim: str, start: int) -> tuple[slice, ...]:
    """A region of the store in the coordinates of one file."""
    return tuple(
        slice(s.start - start, s.stop - start) if d == concat_dim else s
        for d, s in zip(dims, region, strict=True)
    )


def is_time(attrs: dict[str, Any]) -> bool:
    return "since" in str(attrs.get("units", ""))


class Source:
    """One source file, read by netCDF-C (local files by path, remote ones from their bytes,
    fetched in one request, tied to the version the scan recorded), or by h5netcdf where
    netCDF-C cannot (a filter it lacks, files too large to fetch whole)."""

    def __init__(self, handle: Any, names: list[str], close: Any, h5: bool = False):
        self.handle, self.names, self._close, self.h5 = handle, names, close, h5

    @classmethod
    def open(
        cls, url: str, data: bytes | None, access: Access, group: str | None, h5: bool = False
    ) -> Source:
        """``data``: a remote file's bytes (``fetch``), or None to read it where it is."""
        import netCDF4

        if not h5 and data is None and not url.startswith("file://"):  # too large to fetch
            reader = access.reader(url, block_bytes=4 << 20)
            if reader.read(4)[:3] == b"CDF":
                return cls._large_netcdf3(url, access, group)
            return cls._h5netcdf(reader, group)
        if h5:
            where = local_path(url) if data is None else io.BytesIO(data)
            return cls._h5netcdf(where, group)
        try:
            if data is None:
                nc = netCDF4.Dataset(local_path(url))
            else:
                nc = netCDF4.Dataset("source.nc", memory=data)
        except OSError as exc:  # HDF5 netCDF-C refuses (references, odd links): h5netcdf
            if not is_hdf5(url, data):
                raise AccessError(f"{url}: netCDF-C cannot open it ({exc})") from None
            return cls.open(url, data, access, group, h5=True)
        handle = nc[group] if group else nc
        return cls(handle, list(handle.variables), nc.close)

    @classmethod
    def _large_netcdf3(cls, url: str, access: Access, group: str | None) -> Source:
        """netCDF-C reads HTTP byte ranges itself; S3 objects, whose requests it cannot
        sign, through a temporary copy."""
        import netCDF4

        if url.startswith(("http://", "https://")):
            nc = netCDF4.Dataset(f"{url}#mode=bytes")
            return cls(nc, list(nc.variables), nc.close)
        folder = tempfile.TemporaryDirectory(prefix="nc2ice-validate-")
        copy = Path(folder.name) / "source.nc"
        copy.write_bytes(access.get_ranges(url, [0], [access.head(url)["size"]])[0])
        nc = netCDF4.Dataset(copy)

        def close() -> None:
            nc.close()
            folder.cleanup()

        return cls(nc, list(nc.variables), close)

    @classmethod
    def _h5netcdf(cls, fileobj: Any, group: str | None) -> Source:
        ds = xr.open_dataset(
            fileobj, engine="h5netcdf", group=group, phony_dims="sort", decode_cf=False
        )
        return cls(ds, list(ds.variables), ds.close, h5=True)

    def close(self) -> None:
        self._close()

    def global_attrs(self) -> dict[str, Any]:
        if self.h5:
            return dict(self.handle.attrs)
        return {k: self.handle.getncattr(k) for k in self.handle.ncattrs()}

    def attrs(self, name: str) -> dict[str, Any]:
        var = self.handle.variables[name]
        if self.h5:
            return dict(var.attrs)
        attrs = {k: var.getncattr(k) for k in var.ncattrs()}
        if getattr(var.dtype, "kind", "O") == "S" and "_FillValue" in attrs:  # as xarray does
            attrs["_FillValue"] = np.bytes_(attrs["_FillValue"])
        return attrs

    def dims(self, name: str) -> tuple[str, ...]:
        var = self.handle.variables[name]
        return tuple(var.dims if self.h5 else var.dimensions)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.handle.variables[name].shape)

    def raw(self, name: str, region: tuple[slice, ...]) -> np.ndarray:
        """Numbers as the file stores them (netCDF-C: no masking, scaling or joining of
        characters; xarray reads them so before it decodes)."""
        var = self.handle.variables[name]
        if self.h5:
            return np.asarray(var[region].values)
        var.set_auto_maskandscale(False)
        with contextlib.suppress(AttributeError):
            var.set_auto_chartostring(False)
        try:
            return np.asarray(var[region])
        except RuntimeError as exc:
            if "Filter error" in str(exc):
                raise NeedsH5(str(exc)) from None
            raise

    def decoded(
        self, regions: dict[str, list[tuple[slice, ...]]], concat_dim: str, start: int
    ) -> dict[str, list[np.ndarray]]:
        """Each region of each variable (in the store's coordinates: shifted to the file's),
        decoded as ``xr.open_dataset`` decodes the file."""
        variables: dict[str, xr.Variable] = {}
        for name, wanted in regions.items():
            dims, attrs = self.dims(name), self.attrs(name)
            for n, region in enumerate(wanted):
                raw = self.raw(name, local_region(region, dims, concat_dim, start))
                variables[f"{name}\0{n}"] = xr.Variable(dims, raw, dict(attrs))
        bounds = self._time_parents(regions)
        decoded, _, _ = xr.conventions.decode_cf_variables(
            {**bounds, **_with_bounds(variables, bounds)}, {}, decode_coords=False
        )
        out: dict[str, list[np.ndarray]] = {}
        for key in variables:
            out.setdefault(key.partition("\0")[0], []).append(np.asarray(decoded[key].values))
        return out

    def _time_parents(self, regions) -> dict[str, xr.Variable]:
        """Time coordinates whose bounds are decoded (their units decode the bounds)."""
        parents = {}
        for name in self.names:
            attrs = self.attrs(name)
            if attrs.get("bounds") in regions and is_time(attrs):
                parents[f"{name}\0parent"] = xr.Variable((), 0, attrs)
        return parents


def _with_bounds(variables: dict[str, xr.Variable], parents: dict[str, xr.Variable]):
    """xarray gives time bounds their coordinate's units and calendar as it decodes: the
    same for regions keyed ``name\\0n``."""
    for parent in parents.values():
        bounds = parent.attrs["bounds"]
        for key, target in variables.items():
            if key.partition("\0")[0] == bounds:
                for attr in TIME_DECODES:
                    if attr in parent.attrs and attr not in target.attrs:
                        target.attrs[attr] = parent.attrs[attr]
    return variables
