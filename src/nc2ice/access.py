"""Where bytes live.

One description (the config's ``s3`` and ``http`` sections) gives everything that reads or
references a URL: the obstore store that fetches bytes, the Icechunk storage that holds a
repository, the Icechunk virtual chunk container that lets a reader follow a reference, and
the credentials for both.  No other module builds a store or parses a URL prefix.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import icechunk
import obstore
from obstore.store import HTTPStore, LocalStore, S3Store

SCHEMES = ("http", "https", "s3", "file")


class AccessError(RuntimeError):
    """A URL that no configured store can serve, or a source that cannot be read."""


def normalize_url(location: str) -> str:
    """A URL for a source or store: local paths become absolute ``file://`` URLs."""
    scheme = urlsplit(location).scheme
    if scheme in SCHEMES:
        return location
    if scheme and len(scheme) > 1:
        raise AccessError(f"{location}: unsupported URL scheme {scheme!r} (use {SCHEMES})")
    # Not Path.as_uri(): that percent-encodes glob characters, and nothing decodes them again.
    return "file://" + str(Path(location).expanduser().resolve())


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

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Access:
        s3 = S3Options(**config.get("s3", {}))
        store_s3 = {k: v for k, v in config.get("store", {}).items() if k != "root"}
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
            return S3Store(
                parts.netloc,
                endpoint=self.s3.endpoint_url,
                region=self.s3.region or "us-east-1",
                virtual_hosted_style_request=not self.s3.force_path_style,
                skip_signature=self.s3.anonymous,
                client_options=client,
                retry_config=retry,
                **_s3_keys_from_env(),
            )
        raise AccessError(f"{prefix}: no store can serve this URL")

    def path_in_store(self, url: str) -> str:
        parts = urlsplit(url)
        return parts.path if parts.scheme == "file" else parts.path.lstrip("/")

    def head(self, url: str) -> dict[str, Any]:
        """Size, ETag and Last-Modified of one source, with errors that name it."""
        store = self.object_store(prefix_of(url))
        try:
            meta = obstore.head(store, self.path_in_store(url))
        except Exception as exc:  # obstore raises several error types; all mean "unreadable"
            raise AccessError(f"{url}: cannot read ({describe_error(exc)})") from exc
        modified = meta.get("last_modified")
        return {
            "size": int(meta["size"]),
            "etag": (meta.get("e_tag") or "").strip('"'),
            "last_modified": modified.isoformat() if modified else "",
        }

    def get_ranges(self, url: str, starts: list[int], lengths: list[int]) -> list[bytes]:
        store = self.object_store(prefix_of(url))
        ends = [s + n for s, n in zip(starts, lengths, strict=True)]
        try:
            out = obstore.get_ranges(store, self.path_in_store(url), starts=starts, ends=ends)
        except Exception as exc:
            raise AccessError(f"{url}: cannot read byte ranges ({describe_error(exc)})") from exc
        return [bytes(b) for b in out]

    # -- the Icechunk side -----------------------------------------------------------------

    def storage(self, store_url: str) -> icechunk.Storage:
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

    def container(self, prefix: str) -> icechunk.VirtualChunkContainer:
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
        config = icechunk.RepositoryConfig.default()
        for prefix in prefixes:
            config.set_virtual_chunk_container(self.container(prefix))
        return config

    def authorize(self, prefixes: list[str]) -> dict[str, Any]:
        """Credentials for following references: anonymous except keyed S3."""
        creds: dict[str, Any] = {}
        for prefix in prefixes:
            keyed = prefix.startswith("s3://") and not self.s3.anonymous
            creds[prefix] = icechunk.s3_from_env_credentials() if keyed else None
        return icechunk.containers_credentials(creds)


def _s3_keys_from_env() -> dict[str, str]:
    names = {
        "access_key_id": "AWS_ACCESS_KEY_ID",
        "secret_access_key": "AWS_SECRET_ACCESS_KEY",
        "session_token": "AWS_SESSION_TOKEN",
    }
    return {k: os.environ[v] for k, v in names.items() if os.environ.get(v)}


def describe_error(exc: BaseException) -> str:
    """The cause of an obstore error in one line, without the Rust backtrace."""
    text = str(exc).strip()
    for marker in ("Client error with status", "Server error with status", "status:"):
        if marker in text:
            text = text[text.index(marker) :]
            break
    first = text.splitlines()[0] if text else type(exc).__name__
    if type(exc).__name__ == "FileNotFoundError" or "NotFound" in type(exc).__name__:
        return "not found (404)"
    if "error sending request" in text or "Connection refused" in text:
        return "cannot connect to the server (refused, unreachable, or unknown host)"
    return first[:300]
