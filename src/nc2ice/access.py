"""Where bytes live.

One description (the config's ``s3`` and ``http`` sections) gives everything that reads or
references a URL: the obstore store that fetches bytes, the Icechunk storage that holds a
repository, the Icechunk virtual chunk container that lets a reader follow a reference, and
the credentials for both.  No other module builds a store or parses a URL prefix.
"""

from __future__ import annotations

import bisect
import functools
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import obstore
from obstore.store import HTTPStore, LocalStore, S3Store

from nc2ice.errors import AccessError

if TYPE_CHECKING:
    import icechunk

SCHEMES = ("http", "https", "s3", "file")
DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_url(location: str) -> str:
    """A URL for a source or store: local paths become absolute ``file://`` URLs, and a
    scheme's default port (``:80``, ``:443``) is dropped."""
    parts = urlsplit(location)
    if parts.scheme in DEFAULT_PORTS and parts.port == DEFAULT_PORTS[parts.scheme]:
        return parts._replace(netloc=parts.netloc.rpartition(":")[0]).geturl()
    if parts.scheme in SCHEMES:
        return location
    if parts.scheme and len(parts.scheme) > 1:
        raise AccessError(f"{location}: unsupported URL scheme {parts.scheme!r} (use {SCHEMES})")
    # Not Path.as_uri(): that percent-encodes glob characters, and nothing decodes them again.
    return "file://" + str(Path(location).expanduser().resolve())


def referenceable_url(location: str) -> str:
    """A source URL that a store's references can point at, or an error saying why not.

    Icechunk 1.x drops an explicit port from a virtual chunk's URL (fixed in 2.x), so a
    reference to ``http://host:8080/x.nc`` would be looked up on port 80 and refused.
    """
    url = normalize_url(location)
    parts = urlsplit(url)
    if parts.scheme in DEFAULT_PORTS and parts.port is not None:
        raise AccessError(
            f"{url}: a store cannot reference files on port {parts.port}: Icechunk 1.x drops "
            "the port from its references. Serve the files on the default port "
            f"({DEFAULT_PORTS[parts.scheme]}), put a proxy in front of the server, or mirror "
            "the files to a local folder or S3"
        )
    return url


def local_path(url: str) -> Path:
    return Path(urlsplit(url).path)


def prefix_of(url: str) -> str:
    """The virtual chunk container prefix that covers ``url``: one per host or bucket."""
    parts = urlsplit(url)
    if parts.scheme == "file":  # Icechunk wants a folder here, not the bare root
        return f"file://{Path(parts.path).parent.as_posix().rstrip('/')}/"
    if parts.scheme in ("http", "https", "s3"):
        return f"{parts.scheme}://{parts.netloc}/"
    raise AccessError(f"{url}: no store can serve this URL (expected one of {SCHEMES})")


@dataclass(frozen=True)
class S3Options:
    endpoint_url: str | None = None
    region: str | None = None
    force_path_style: bool = False
    anonymous: bool = False

    @property
    def allow_http(self) -> bool:
        return bool(self.endpoint_url and self.endpoint_url.startswith("http://"))


@dataclass(frozen=True)
class Access:
    """Stores, containers and credentials for every URL a run touches."""

    s3: S3Options = field(default_factory=S3Options)
    store_s3: S3Options = field(default_factory=S3Options)
    timeout_s: int = 60
    retries: int = 5

    def server(self, url: str) -> str | None:
        """The server a URL's bytes come from (a web host, or the S3 endpoint), whose
        connections `http.max_connections` caps; None for local files."""
        parts = urlsplit(normalize_url(url))
        if parts.scheme in ("http", "https"):
            return parts.netloc
        if parts.scheme == "s3":
            endpoint = self.s3.endpoint_url
            return urlsplit(endpoint).netloc if endpoint else "s3.amazonaws.com"
        return None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Access:
        s3 = S3Options(**config.get("s3", {}))
        store_s3 = {
            k: v for k, v in config.get("store", {}).items() if k not in ("root", "repository")
        }
        http = config.get("http", {})
        return cls(
            s3=s3,
            store_s3=S3Options(**{**s3.__dict__, **store_s3}),
            timeout_s=int(http.get("timeout_s", 60)),
            retries=int(http.get("retries", 5)),
        )

    # -- reading sources -------------------------------------------------------------------

    @functools.cache  # noqa: B019 - one client per prefix, kept for the run
    def object_store(self, prefix: str) -> Any:
        parts = urlsplit(prefix)
        retry = {
            "max_retries": self.retries,
            "retry_timeout": timedelta(seconds=10 * self.timeout_s),
            "backoff": {
                "init_backoff": timedelta(seconds=0.2),
                "max_backoff": timedelta(seconds=10),
                "base": 2.0,
            },
        }
        client = {"timeout": f"{self.timeout_s}s", "connect_timeout": "10s", "allow_http": True}
        if parts.scheme == "file":
            return LocalStore()
        if parts.scheme in ("http", "https"):
            return HTTPStore.from_url(prefix, client_options=client, retry_config=retry)
        if parts.scheme == "s3":
            return _s3_store(parts.netloc, self.s3, client_options=client, retry_config=retry)
        raise AccessError(f"{prefix}: no store can serve this URL")

    def path_in_store(self, url: str) -> str:
        parts = urlsplit(url)
        return parts.path if parts.scheme == "file" else parts.path.lstrip("/")

    def head(self, url: str) -> dict[str, Any]:
        """Size, ETag and Last-Modified of one source, with errors that name it."""
        try:
            if url.startswith("file://"):
                st = local_path(url).stat()
                modified = datetime.fromtimestamp(st.st_mtime, UTC)
                return identity({"size": st.st_size, "last_modified": modified})
            meta = obstore.head(self.object_store(prefix_of(url)), self.path_in_store(url))
        except Exception as exc:  # obstore raises several error types; all mean "unreadable"
            if _status(exc) in (405, 501):  # a server that refuses HEAD answers a ranged GET
                return self.version(url)
            raise self.error(url, exc) from None
        return identity(meta)

    def version(self, url: str) -> dict[str, Any]:
        """Size, ETag and Last-Modified of a remote source from a one-byte ranged GET (its
        Content-Range tells the size), for servers that refuse HEAD."""
        store = self.object_store(prefix_of(url))
        try:
            result = obstore.get(store, self.path_in_store(url), options={"range": (0, 1)})
        except Exception as exc:  # noqa: BLE001 - as in head()
            raise self.error(url, exc) from None
        return identity(result.meta)

    def get_ranges(self, url: str, starts: list[int], lengths: list[int]) -> list[bytes]:
        """Byte ranges of one file, those less than a MiB apart read together, one request
        after the other (obstore's own get_ranges would open up to ten connections)."""
        store = self.object_store(prefix_of(url))
        path = self.path_in_store(url)
        spans = merged_spans((s, s + n) for s, n in zip(starts, lengths, strict=True))
        try:
            blocks = [bytes(obstore.get_range(store, path, start=a, end=b)) for a, b in spans]
        except Exception as exc:
            raise self.error(url, exc, "cannot read byte ranges") from None
        firsts = [a for a, _ in spans]
        out = []
        for start, length in zip(starts, lengths, strict=True):
            i = bisect.bisect_right(firsts, start) - 1
            out.append(blocks[i][start - firsts[i] : start - firsts[i] + length])
        return out

    def error(self, url: str, exc: BaseException, doing: str = "cannot read") -> AccessError:
        """One line naming the URL, what failed and the likely cause (no Rust backtrace)."""
        where = ""
        if url.startswith("s3://"):
            where = f" [bucket {urlsplit(url).netloc!r} at {self.s3.endpoint_url or 'AWS S3'}]"
        return AccessError(f"{url}: {doing} ({describe_error(exc, url)}){where}")

    # -- the Icechunk side -----------------------------------------------------------------

    def storage(self, store_url: str) -> icechunk.Storage:
        import icechunk  # here: scanning and listing do not need it

        parts = urlsplit(store_url)
        if parts.scheme == "file":
            return icechunk.local_filesystem_storage(str(local_path(store_url)))
        if parts.scheme == "s3":
            s3 = self.store_s3
            return icechunk.s3_storage(
                bucket=parts.netloc,
                prefix=parts.path.strip("/"),
                region=s3.region or "us-east-1",
                endpoint_url=s3.endpoint_url,
                allow_http=s3.allow_http,
                force_path_style=s3.force_path_style,
                anonymous=s3.anonymous or None,
                from_env=None if s3.anonymous else True,
            )
        raise AccessError(f"{store_url}: a store must be a local folder or an s3:// URL")

    def remove_repository(self, store_url: str) -> None:
        """Delete a repository this run created and could not fill (nothing else is there)."""
        parts = urlsplit(store_url)
        if parts.scheme == "file":
            shutil.rmtree(local_path(store_url), ignore_errors=True)
            return
        store = _s3_store(parts.netloc, self.store_s3, prefix=parts.path.strip("/"))
        for batch in obstore.list(store, chunk_size=1000):
            obstore.delete(store, [meta["path"] for meta in batch])

    def container(self, prefix: str) -> icechunk.VirtualChunkContainer:
        import icechunk  # here: scanning and listing do not need it

        scheme = urlsplit(prefix).scheme
        if scheme == "file":
            config = icechunk.local_filesystem_store(urlsplit(prefix).path)
        elif scheme == "http":
            config = icechunk.http_store({"allow_http": "true"})
        elif scheme == "https":
            config = icechunk.http_store()
        else:
            config = icechunk.s3_store(
                region=self.s3.region or "us-east-1",
                endpoint_url=self.s3.endpoint_url,
                allow_http=self.s3.allow_http,
                anonymous=self.s3.anonymous,
                s3_compatible=self.s3.endpoint_url is not None,
                force_path_style=self.s3.force_path_style,
            )
        return icechunk.VirtualChunkContainer(prefix, config)

    def repository_config(self, prefixes: list[str]) -> icechunk.RepositoryConfig:
        import icechunk  # here: scanning and listing do not need it

        config = icechunk.RepositoryConfig.default()
        for prefix in prefixes:
            config.set_virtual_chunk_container(self.container(prefix))
        return config

    def authorize(self, prefixes: list[str]) -> dict[str, Any]:
        import icechunk  # here: scanning and listing do not need it

        """Credentials for following references: anonymous except keyed S3."""
        creds: dict[str, Any] = {}
        for prefix in prefixes:
            keyed = prefix.startswith("s3://") and not self.s3.anonymous
            creds[prefix] = icechunk.s3_from_env_credentials() if keyed else None
        return icechunk.containers_credentials(creds)


def _s3_store(bucket: str, options: S3Options, **kwargs: Any) -> S3Store:
    kwargs.setdefault("client_options", {"allow_http": True})
    return S3Store(
        bucket,
        endpoint=options.endpoint_url,
        region=options.region or "us-east-1",
        virtual_hosted_style_request=not options.force_path_style,
        skip_signature=options.anonymous,
        **kwargs,
        **_s3_keys_from_env(),
    )


def _s3_keys_from_env() -> dict[str, str]:
    names = {
        "access_key_id": "AWS_ACCESS_KEY_ID",
        "secret_access_key": "AWS_SECRET_ACCESS_KEY",
        "session_token": "AWS_SESSION_TOKEN",
    }
    return {k: os.environ[v] for k, v in names.items() if os.environ.get(v)}


def identity(meta: Any) -> dict[str, Any]:
    """What identifies one version of a source: size, ETag, Last-Modified."""
    modified = meta.get("last_modified")
    return {
        "size": int(meta["size"]),
        "etag": meta.get("e_tag") or "",  # as the server sends it: If-Match compares it
        "last_modified": modified.isoformat() if modified else "",
    }


def merged_spans(spans: Iterable[tuple[int, int]], gap: int = 1 << 20) -> list[tuple[int, int]]:
    """(start, end) byte spans, sorted and joined where less than ``gap`` apart: one request
    each."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start - merged[-1][1] <= gap:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def _status(exc: BaseException) -> int | None:
    """The HTTP status code an obstore error reports, if any."""
    found = re.search(r"status code: (\d{3})", str(exc).split("Debug source:")[0])
    return int(found.group(1)) if found else None


def describe_error(exc: BaseException, url: str = "") -> str:
    """The cause of an obstore error in one line, in the words of the user's setup."""
    text = str(exc).split("Debug source:")[0].strip()
    code = _status(exc)
    scheme = urlsplit(url).scheme
    # obstore calls every failed HEAD "not found": believe the status code first
    if code == 404 or (isinstance(exc, FileNotFoundError) and code is None):
        if scheme == "file":
            return "no such file"
        if "NoSuchBucket" in text:
            return "the bucket does not exist"
        return "not found (404)"
    if scheme == "s3" and "169.254.169.254" in text:
        return (
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or `anonymous: true` under `s3:` for a public bucket"
        )
    if scheme == "s3" and code == 403:
        for known in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
            if known in text:
                return f"access denied (403 {known}): check the AWS_* credentials and the bucket"
        return "access denied (403): check the AWS_* credentials and the bucket's policy"
    if "error sending request" in text or "Connection refused" in text or "dns error" in text:
        return "cannot connect to the server (refused, unreachable, or unknown host)"
    if code is not None:
        return f"the server answered {code}"
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:300]
