"""THREDDS catalogs for the tests, written as TDS 4.6 and 5.x write them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<catalog xmlns="http://www.unidata.ucar.edu/namespaces/thredds/InvCatalog/v1.0"
         xmlns:xlink="http://www.w3.org/1999/xlink" name="{name}" version="{version}">
"""

# TDS 4.6: one compound service, inherited by a top dataset that holds the files.
SERVICES_46 = """  <service name="all" serviceType="Compound" base="">
    <service name="odap" serviceType="OpenDAP" base="/thredds/dodsC/" />
    <service name="http" serviceType="HTTPServer" base="/thredds/fileServer/" />
    <service name="wms" serviceType="WMS" base="/thredds/wms/" />
  </service>
  <service name="dap-only" serviceType="OpenDAP" base="/thredds/dodsC/" />
"""

# TDS 5: simple services, the dataset naming its own, catalog-level inherited metadata.
SERVICES_5 = """  <service name="fileServer" serviceType="HTTPServer" base="/thredds/fileServer/" />
  <service name="dap4" serviceType="DAP4" base="/thredds/dap4/" />
  <metadata inherited="true"><serviceName>fileServer</serviceName></metadata>
"""


def modified(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dataset(path: Path, url_path: str, version: str) -> str:
    size = (
        f'<dataSize units="Kbytes">{path.stat().st_size / 1024:.2f}</dataSize>'
        if version.startswith("1.0.1")
        else f'<dataSize units="Mbytes">{path.stat().st_size / 1e6:.3f}</dataSize>'
    )
    return (
        f'    <dataset name="{path.name}" ID="{url_path}" urlPath="{url_path}">\n'
        f'      {size}<date type="modified">{modified(path)}</date>\n'
        "    </dataset>\n"
    )


def write_tree(root: Path, files_by_year: dict[int, list[Path]], broken_ref: bool = False) -> str:
    """A TDS 4.6 top catalog referring to one TDS 5 catalog per year (and, if asked, to one
    that does not exist); a dataset served by OPeNDAP only. Returns the top catalog's path
    under the server root."""
    top = root / "thredds" / "catalog" / "cmip" / "catalog.xml"
    top.parent.mkdir(parents=True, exist_ok=True)
    body = [HEAD.format(name="cmip", version="1.0.1"), SERVICES_46]
    body.append('  <dataset name="cmip" ID="cmip">\n')
    body.append('    <metadata inherited="true"><serviceName>all</serviceName></metadata>\n')
    for year in files_by_year:
        body.append(f'    <catalogRef xlink:href="{year}/catalog.xml" xlink:title="{year}" />\n')
    if broken_ref:
        body.append('    <catalogRef xlink:href="missing/catalog.xml" xlink:title="gone" />\n')
    body.append(
        '    <dataset name="tas_dap_only.nc" urlPath="cmip/tas_dap_only.nc">'
        "<serviceName>dap-only</serviceName></dataset>\n"
    )
    body.append("  </dataset>\n</catalog>\n")
    top.write_text("".join(body))
    for year, files in files_by_year.items():
        catalog = top.parent / str(year) / "catalog.xml"
        catalog.parent.mkdir(exist_ok=True)
        entries = "".join(dataset(f, f"cmip/{year}/{f.name}", "1.2") for f in files)
        catalog.write_text(
            HEAD.format(name=str(year), version="1.2") + SERVICES_5 + entries + "</catalog>\n"
        )
    return "thredds/catalog/cmip/catalog.xml"


def place_files(root: Path, files_by_year: dict[int, list[Path]]) -> dict[int, list[Path]]:
    """Copy the files where the fileServer serves them."""
    out = {}
    for year, files in files_by_year.items():
        folder = root / "thredds" / "fileServer" / "cmip" / str(year)
        folder.mkdir(parents=True, exist_ok=True)
        out[year] = []
        for f in files:
            target = folder / f.name
            target.write_bytes(f.read_bytes())
            out[year].append(target)
    return out
