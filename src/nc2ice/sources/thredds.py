"""THREDDS catalogs as sources: follow a catalog and its catalogRefs to the files it serves.

A dataset becomes its HTTPServer (``fileServer``) URL, made from the catalog's own service
bases (compound services included), and keeps the modification date the catalog gives, so
no HEAD request is needed per file (a dataset without one is asked with a HEAD).  Catalog
sizes (``dataSize``, in Kbytes or Mbytes) are rounded and are never taken for a file's size:
the first ranged read of the file tells it.

Catalogs are read over the run's own HTTP client (its retries, timeouts and connection
budget), concurrently within ``http.max_connections``.  Why not siphon: docs/design.md.
"""

from __future__ import annotations

import fnmatch
import logging
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import obstore

from nc2ice.access import Access, normalize_url, referenceable_url
from nc2ice.errors import AccessError
from nc2ice.logs import Progress

log = logging.getLogger(__name__)
NS = "{http://www.unidata.ucar.edu/namespaces/thredds/InvCatalog/v1.0}"
XLINK = "{http://www.w3.org/1999/xlink}"
FILE_SERVICES = {"httpserver", "http", "file", "fileserver"}  # as TDS versions spell it


@dataclass
class Found:
    """What a crawl found: file URLs with their dates, and what it left out and why."""

    files: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # url -> identity
    notes: list[str] = field(default_factory=list)
    catalogs: int = 0


def crawl(
    catalog: str,
    access: Access,
    *,
    include: str | None = None,
    exclude: str | None = None,
    depth: int = 3,
    workers: int = 4,
) -> Found:
    """The files of ``catalog`` and the catalogs it refers to, ``depth`` levels down."""
    found = Found()
    level = [normalize_url(catalog)]  # refuses a URL with a password, before any request
    seen = set(level)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for down in range(depth + 1):
            if not level:
                break
            refs: list[str] = []
            progress = Progress(f"{catalog}: catalogs read {down} level(s) down", len(level))
            for url, root in zip(level, pool.map(lambda u: _fetch(u, access), level)):
                found.catalogs += 1
                refs += _read(url, root, found, include, exclude)
                progress.advance()
            level = [r for r in dict.fromkeys(refs) if r not in seen]
            seen.update(level)
    if level:
        found.notes.append(
            f"{len(level)} catalog(s) deeper than depth {depth} were not followed, e.g. {level[0]}"
        )
    return found


def _fetch(url: str, access: Access) -> ET.Element:
    try:
        body = bytes(obstore.get(access.store_for(url), access.path_in_store(url)).bytes())
    except Exception as exc:
        raise access.error(url, exc, "cannot read the THREDDS catalog") from None
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        start = body[:60].decode("utf-8", "replace")
        raise AccessError(f"{url}: not a THREDDS catalog ({exc}; starts {start!r})") from None


def _read(url: str, root: ET.Element, found: Found, include, exclude) -> list[str]:
    """Add the catalog's files to ``found``; return the catalogs it refers to."""
    if root.tag != f"{NS}catalog":
        raise AccessError(f"{url}: not a THREDDS catalog (its root is <{root.tag}>)")
    services = _services(root)
    refs: list[str] = []
    url = urljoin(url, root.get("base", ""))  # what relative URLs in the catalog start from
    _walk(root, url, services, _inherited(root, None), found, refs, include, exclude)
    return refs


def _services(root: ET.Element) -> dict[str, list[tuple[str, str]]]:
    """Each service name: the (type, base) of it, or of each service a compound one holds."""
    out: dict[str, list[tuple[str, str]]] = {}
    for service in root.iter(f"{NS}service"):
        kind = service.get("serviceType", "").lower()
        members = service.findall(f"{NS}service") if kind == "compound" else [service]
        out[service.get("name", "").lower()] = [
            (m.get("serviceType", "").lower(), m.get("base", "")) for m in members
        ]
    return out


def _walk(node, url, services, inherited, found: Found, refs, include, exclude) -> None:
    for child in node:
        if child.tag == f"{NS}catalogRef":
            refs.append(normalize_url(urljoin(url, child.get(f"{XLINK}href", ""))))
        elif child.tag == f"{NS}dataset":
            service = _service_name(child, inherited)
            if service is None and len(services) == 1:  # a catalog with one service
                service = next(iter(services))
            serves = child.get("urlPath") is not None or child.find(f"{NS}access") is not None
            if serves and _wanted(_names(child), include, exclude):
                _add(child, url, services, service, found)
            _walk(child, url, services, _inherited(child, inherited), found, refs, include, exclude)


def _add(dataset: ET.Element, url: str, services, service: str | None, found: Found) -> None:
    name = dataset.get("name", "")
    paths = [(service, dataset.get("urlPath"))] if dataset.get("urlPath") is not None else []
    paths += [(a.get("serviceName"), a.get("urlPath")) for a in dataset.findall(f"{NS}access")]
    for service_name, path in paths:
        for kind, base in services.get((service_name or "").lower(), []):
            if kind in FILE_SERVICES and path is not None:
                folder = urljoin(url, base).rstrip("/") + "/"
                file_url = referenceable_url(urljoin(folder, path.lstrip("/")))
                modified = _modified(dataset)
                # Without a date the listing asks the server (a HEAD), or changes go unseen.
                found.files[file_url] = (
                    {"size": 0, "etag": "", "last_modified": modified} if modified else None
                )
                return
    offered = {k for s, _ in paths for k, _ in services.get((s or "").lower(), [])}
    offered = sorted(offered) or ["none"]
    found.notes.append(
        f"{name}: left out: it has no HTTPServer (fileServer) access in {url} "
        f"(it offers {', '.join(offered)})"
    )


def _service_name(node: ET.Element, inherited: str | None) -> str | None:
    """A dataset's service: its own serviceName (element or the older attribute), its
    metadata's, or the inherited one."""
    if node.get("serviceName"):
        return node.get("serviceName", "").strip()
    own = node.find(f"{NS}serviceName")
    if own is not None and own.text:
        return own.text.strip()
    for metadata in node.findall(f"{NS}metadata"):
        name = metadata.find(f"{NS}serviceName")
        if name is not None and name.text:
            return name.text.strip()
    return inherited


def _inherited(node: ET.Element, inherited: str | None) -> str | None:
    """What a node passes to the datasets inside it: metadata marked inherited."""
    for metadata in node.findall(f"{NS}metadata"):
        name = metadata.find(f"{NS}serviceName")
        if metadata.get("inherited") == "true" and name is not None and name.text:
            return name.text.strip()
    return inherited


def _modified(dataset: ET.Element) -> str:
    """The catalog's modification date, as a listing of the server would give it: the
    dataset's own (never that of a dataset nested in it)."""
    dates = dataset.findall(f"{NS}date") + dataset.findall(f"{NS}metadata/{NS}date")
    for date in dates:
        if date.get("type", "").lower() == "modified" and date.text:
            return _iso(date.text.strip())
    return ""


def _iso(text: str) -> str:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).replace(microsecond=0).isoformat()  # as HTTP dates are


def _names(dataset: ET.Element) -> set[str]:
    """What ``include``/``exclude`` match: the dataset's name, and its file name where a
    catalog names datasets otherwise ("Temperature 2020" for ``tas_2020.nc``)."""
    paths = [dataset.get("urlPath")] + [a.get("urlPath") for a in dataset.findall(f"{NS}access")]
    return {dataset.get("name", "")} | {p.rstrip("/").rsplit("/", 1)[-1] for p in paths if p}


def _wanted(names: set[str], include: str | None, exclude: str | None) -> bool:
    if include and not any(fnmatch.fnmatchcase(n, include) for n in names):
        return False
    return not (exclude and any(fnmatch.fnmatchcase(n, exclude) for n in names))
