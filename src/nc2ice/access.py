"""Where bytes live.

One description (the config's ``s3`` and ``http`` sections) gives everything that reads or
references a URL: the obstore store that fetches bytes, the Icechunk storage that holds a
repository, the Icechunk virtual chunk container that lets a reader follow a reference, and
the credentials for both.  No other module builds a store or parses a URL prefix.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import obstore
from obstore.exceptions import PreconditionError
from obstore.store import HTTPStore, LocalStore, S3Store

from nc2ice.errors import AccessError

if TYPE_CHECKING:
    import icechunk

    from nc2ice.remote_file import SourceReader

SCHEMES = ("http", "https", "s3", "file")
DEFAULT_PORTS = {"http": 80, "https": 443}
# What a URL's path may hold as it is (RFC 3986's pchar, less '%'); everything else is
# percent-encoded.  A path made of these alone reads the same as a URL and as a path, so
# the URLs of such files are what they were before local paths were encoded.
PATH_SAFE = "/!$&'()*+,;=:@~"
_PLAIN = re.compile(r"[A-Za-z0-9/!$&'()*+,;=:@~._-]*")
_CANONICAL = re.compile(r"(?:[A-Za-z0-9/!$&'()*+,;=:@~._-]|%[0-9A-Fa-f]{2})*")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A URL's user info: everything from "//" to the last "@" that a host follows (a password
# may hold "@", "#", "?" or "/"); it may mask a path holding "@", which only costs a message.
_USER_INFO = re.compile(
    r"\b([A-Za-z][A-Za-z0-9+.-]*://)(\S*)@(?=[A-Za-z0-9.\-\[\]:]+(?:[/?#]|$|\s))"
)


def normalize_url(location: str) -> str:
    """A URL for a source or store: local paths become absolute ``file://`` URLs, paths
    percent-encoded where a URL needs it (``#``, ``?``, ``%``, spaces, non-ASCII), and a
    scheme's default port (``:80``, ``:443``) is dropped.  URLs holding a user name or
    password are refused (see `refuse_user_info`)."""
    scheme = urlsplit(location).scheme
    if scheme == "file":
        return file_url(_path_of_file_url(location))
    if not scheme or len(scheme) == 1:  # a path (``C:`` would be a drive, not a scheme)
        return file_url(Path(location).expanduser().resolve())
    if scheme not in SCHEMES:
        raise AccessError(f"{location}: unsupported URL scheme {scheme!r} (use {SCHEMES})")
    refuse_user_info(location)
    if scheme == "s3":  # S3 keys have no query or fragment: '#' and '?' are part of the key
        bucket, _, key = location[len("s3://") :].partition("/")
        return f"s3://{bucket}/{_encode(key)}"
    parts = urlsplit(location)
    netloc = parts.netloc
    if parts.port == DEFAULT_PORTS[scheme]:
        netloc = netloc.rpartition(":")[0]
    return parts._replace(netloc=netloc, path=_encode(parts.path)).geturl()


def file_url(path: str | os.PathLike[str]) -> str:
    """The ``file://`` URL of a local path, percent-encoded where a URL needs it."""
    text = os.fspath(path)
    return "file://" + (text if _PLAIN.fullmatch(text) else quote(text, safe=PATH_SAFE))


def key_url(prefix: str, key: str) -> str:
    """The URL of an object a listing named by its key (``s3://bucket/`` and ``a b#1.nc``)."""
    return prefix + quote(key, safe=PATH_SAFE)


def local_path(url: str) -> Path:
    """The local path a ``file://`` URL names (percent-decoded)."""
    part = _file_part(url)
    return Path(unquote(part) if "%" in part else part)


def _file_part(url: str) -> str:
    rest = url[len("file://") :] if url.startswith("file://") else urlsplit(url).path
    return rest.removeprefix("localhost") if rest.startswith("localhost/") else rest


def _path_of_file_url(url: str) -> Path:
    """The path of a ``file://`` URL a user typed: percent-decoded, except where only the
    text as typed names an existing file (``50%41``: a folder named so, not ``50A``); '#'
    and '?' are part of the path (a local file has no query or fragment)."""
    raw = _file_part(url)
    if not raw.startswith("/"):
        raise AccessError(f"{url}: a file:// URL needs an absolute path (file:///...)")
    decoded = unquote(raw)
    if decoded != raw and not Path(decoded).exists() and Path(raw).exists():
        return Path(raw)
    return Path(decoded)


def _encode(path: str) -> str:
    """A remote URL's path with what a URL cannot hold encoded; escapes already there stay."""
    return quote(_STRAY_PERCENT.sub("%25", path), safe=PATH_SAFE + "%")


def canonical_url(url: str) -> str:
    """A URL read back from a table: as `normalize_url` writes it today.  Older versions
    wrote local paths unencoded (``file:///a b/run#2/x.nc``), and a URL with a password is
    kept only with the password masked (it can no longer be listed)."""
    scheme, sep, rest = url.partition("://")
    if sep and _CANONICAL.fullmatch(rest) and scheme in SCHEMES and "@" not in rest:
        return url
    try:
        return normalize_url(url)
    except AccessError:
        return masked(url)


def masked(text: str) -> str:
    """``text`` with the password (or a lone user name, often a token) of every URL in it
    replaced by ``***``."""

    def mask(found: re.Match[str]) -> str:
        user, colon, _ = found.group(2).partition(":")
        return f"{found.group(1)}{user}:***@" if colon else f"{found.group(1)}***@"

    return _USER_INFO.sub(mask, text)


def refuse_user_info(url: str) -> None:
    """Refuse a URL with a user name or password, showing it masked.

    Icechunk 1.x reaches an HTTP virtual chunk only through its URL: a store referencing
    ``https://user:password@host/...`` would hand the password to every reader of the
    store, and it would be written into the manifests, the tables and the report.
    """
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises where a password's "#", "?" or "/" cut the host
    except ValueError:
        raise AccessError(
            f"{masked(url)}: not a URL whose host and port can be read (a password in it, "
            "with '#', '?' or '/'?): a source or store URL holds no user name or password"
        ) from None
    if "@" not in parts.netloc:
        return
    raise AccessError(
        f"{masked(url)}: a URL with a user name or password cannot be a source or a store: "
        "the store's references would carry it to every reader, and the run's files and logs "
        "would hold it. Make the files readable without a password, or mirror them to S3 or "
        "a local folder and list those"
    )


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
    if parts.scheme == "file":
        referenceable_path(local_path(url))
    return url


def referenceable_path(path: Path) -> None:
    """Refuse a local file that a store's references cannot point at (see `prefix_of`)."""
    if _CONTROL.search(str(path)):
        raise AccessError(
            f"{str(path)!r}: a store cannot reference a file whose path holds a control "
            "character (tab, newline): rename it"
        )
    _folder_prefix(path.parent, path)


def prefix_of(url: str) -> str:
    """The virtual chunk container prefix that covers ``url``: one per host or bucket, and
    for a local file the deepest folder above it whose path needs no percent-encoding.

    Icechunk 1.1 decodes an encoded chunk location (``file:///d/run%232/x.nc``) but matches
    it against its containers' prefixes as text, and refuses a prefix holding any character
    that needs encoding, raw or encoded; ``file:///`` alone is refused too ("must include a
    path").  A file with no such folder below ``/`` cannot be referenced.
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = local_path(url)
        return _folder_prefix(path.parent, path)
    if parts.scheme in ("http", "https", "s3"):
        return f"{parts.scheme}://{parts.netloc}/"
    raise AccessError(f"{url}: no store can serve this URL (expected one of {SCHEMES})")


@functools.lru_cache(maxsize=4096)  # one answer per folder: archives hold many files each
def plain_prefix(folder: Path) -> str | None:
    """``file:///`` and the folders of ``folder`` from the top whose names need no encoding."""
    plain = list(itertools.takewhile(_PLAIN.fullmatch, folder.parts[1:]))
    return "file:///" + "/".join(plain) + "/" if plain else None


def _folder_prefix(folder: Path, path: Path) -> str:
    prefix = plain_prefix(folder)
    if prefix is None:
        top = folder.parts[1:2]
        why = f"the first folder below / has one ({top[0]!r})" if top else "it lies in /"
        raise AccessError(
            f"{path}: a store cannot reference this file: Icechunk needs a folder above it "
            "whose path has no character that URLs encode (space, #, %, ?, [, ], non-ASCII), "
            f"and {why}: move or link the files below such a folder"
        )
    return prefix


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
    # url -> the version (size, etag, last_modified) every read of that source must see
    versions: Mapping[str, Mapping[str, Any]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def server(self, url: str) -> str | None:
        """The server a URL's bytes come from (a web host, or the S3 endpoint), whose
        connections `http.max_connections` caps; None for local files."""
        scheme = urlsplit(url).scheme
        if scheme in ("http", "https"):
            return urlsplit(normalize_url(url)).netloc
        if scheme == "s3":
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

    def store_for(self, url: str) -> Any:
        """The obstore store that reads ``url`` (any local file: the local filesystem)."""
        return self.object_store("file:///" if url.startswith("file://") else prefix_of(url))

    def path_in_store(self, url: str) -> str:
        """The path or key a store reads for ``url``, percent-decoded (obstore encodes it)."""
        if url.startswith("file://"):
            return str(local_path(url))
        if url.startswith("s3://"):  # '#' and '?' belong to an S3 key
            return unquote(url[len("s3://") :].partition("/")[2])
        return unquote(urlsplit(url).path).lstrip("/")

    def pinned(self, versions: Mapping[str, Mapping[str, Any]]) -> Access:
        """This access, with every read of these sources tied to the version given (size,
        ETag, Last-Modified, as the scan recorded them; by URL): a source that changed since
        is refused ("changed while it was read"), never read as a mix of two versions."""
        merged = {**self.versions, **{url: dict(v) for url, v in versions.items()}}
        return dataclasses.replace(self, versions=MappingProxyType(merged))

    def reader(self, url: str, **options: Any) -> SourceReader:
        """A file-like view of one source (nc2ice.remote_file), its reads tied to the source's
        pinned version, or else to the version its first response names."""
        from nc2ice.remote_file import SourceReader

        version = self.versions.get(url)
        return SourceReader(
            self.store_for(url), self.path_in_store(url), url=url, version=version, **options
        )

    def head(self, url: str) -> dict[str, Any]:
        """Size, ETag and Last-Modified of one source, with errors that name it."""
        try:
            if url.startswith("file://"):
                return local_identity(local_path(url))
            meta = obstore.head(self.store_for(url), self.path_in_store(url))
        except Exception as exc:  # obstore raises several error types; all mean "unreadable"
            if _status(exc) in (405, 501):  # a server that refuses HEAD answers a ranged GET
                return self.version(url)
            raise self.error(url, exc) from None
        return identity(meta)

    def version(self, url: str) -> dict[str, Any]:
        """Size, ETag and Last-Modified of a remote source from a one-byte ranged GET (its
        Content-Range tells the size), for servers that refuse HEAD."""
        store = self.store_for(url)
        try:
            result = obstore.get(store, self.path_in_store(url), options={"range": (0, 1)})
        except Exception as exc:  # noqa: BLE001 - as in head()
            raise self.error(url, exc) from None
        return identity(result.meta)

    def get_ranges(self, url: str, starts: list[int], lengths: list[int]) -> list[bytes]:
        """Byte ranges of one file, those less than a MiB apart read together, one request
        after the other (obstore's own get_ranges would open up to ten connections), all
        of one version: the pinned one, or else the one the first response names."""
        spans = merged_spans((s, s + n) for s, n in zip(starts, lengths, strict=True))
        version = self.versions.get(url)
        try:
            if url.startswith("file://"):
                blocks = _local_ranges(url, spans, version)
            else:
                blocks = _remote_ranges(
                    self.store_for(url), self.path_in_store(url), url, spans, version
                )
        except AccessError:
            raise
        except Exception as exc:
            raise self.error(url, exc, "cannot read byte ranges") from None
        firsts = [a for a, _ in spans]
        out = []
        for start, length in zip(starts, lengths, strict=True):
            i = bisect.bisect_right(firsts, start) - 1
            out.append(blocks[i][start - firsts[i] : start - firsts[i] + length])
        return out

    def error(self, url: str, exc: BaseException, doing: str = "cannot read") -> AccessError:
        """One line naming the URL, what failed and the likely cause (no Rust backtrace, and
        no password: obstore's messages repeat the URLs they requested)."""
        if isinstance(exc, PreconditionError):
            return changed_error(url, self.versions.get(url), None)
        where = ""
        if url.startswith("s3://"):
            where = f" [bucket {urlsplit(url).netloc!r} at {self.s3.endpoint_url or 'AWS S3'}]"
        return AccessError(masked(f"{url}: {doing} ({describe_error(exc, url)}){where}"))

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
                prefix=self.path_in_store(store_url).strip("/"),
                region=s3.region or "us-east-1",
                endpoint_url=s3.endpoint_url,
                allow_http=s3.allow_http,
                force_path_style=s3.force_path_style,
                anonymous=s3.anonymous or None,
                from_env=None if s3.anonymous else True,
            )
        raise AccessError(f"{store_url}: a store must be a local folder or an s3:// URL")

    def list_location(self, store_url: str, limit: int = 4) -> list[str]:
        """Up to ``limit`` names of what a store location holds ([] where nothing is)."""
        parts = urlsplit(store_url)
        if parts.scheme == "file":
            path = local_path(store_url)
            if path.is_file():
                return [path.name]
            return sorted(p.name for p in path.iterdir())[:limit] if path.is_dir() else []
        prefix = self.path_in_store(store_url).strip("/")
        store = _s3_store(parts.netloc, self.store_s3, prefix=prefix)
        try:
            for batch in obstore.list(store, chunk_size=limit):
                return [meta["path"] for meta in batch][:limit]
        except Exception as exc:  # noqa: BLE001 - obstore raises several types
            raise self.error(store_url, exc, "cannot list the store's location") from None
        return []

    def container(self, prefix: str) -> icechunk.VirtualChunkContainer:
        import icechunk  # here: scanning and listing do not need it

        scheme = urlsplit(prefix).scheme
        if scheme == "file":
            config = icechunk.local_filesystem_store(str(local_path(prefix)))
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
        """Credentials for following references: anonymous except keyed S3 (an S3
        container given None would look for keys, down to the EC2 metadata service)."""
        import icechunk  # here: scanning and listing do not need it

        creds: dict[str, Any] = {}
        for prefix in prefixes:
            if not prefix.startswith("s3://"):
                creds[prefix] = None
            elif self.s3.anonymous:
                creds[prefix] = icechunk.s3_anonymous_credentials()
            else:
                creds[prefix] = icechunk.s3_from_env_credentials()
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


def local_identity(path: Path, st: os.stat_result | None = None) -> dict[str, Any]:
    """A local file's version as the listing records it: its size and modification time."""
    st = st or path.stat()
    return identity({"size": st.st_size, "last_modified": datetime.fromtimestamp(st.st_mtime, UTC)})


VERSION_NAMES = {"size": "size", "etag": "ETag", "last_modified": "Last-Modified"}


def differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """How two versions of a source differ, on the fields both know ('' when they agree)."""
    return "; ".join(
        f"{name} {before[key]} -> {after[key]}"
        for key, name in VERSION_NAMES.items()
        if before.get(key) and after.get(key) and before[key] != after[key]
    )


def conditions(version: Mapping[str, Any] | None) -> dict[str, Any]:
    """obstore get options that make a server refuse (412) a read of any other version:
    If-Match on a strong ETag, else If-Unmodified-Since (a weak ``W/`` ETag must not be used
    with If-Match: servers answer 412 to it whatever the file)."""
    if not version:
        return {}
    etag = version.get("etag") or ""
    if etag and not etag.startswith("W/"):
        return {"if_match": etag}
    if version.get("last_modified"):
        return {"if_unmodified_since": datetime.fromisoformat(version["last_modified"])}
    return {}


def changed_error(url: str, version: Mapping[str, Any] | None, what: str | None) -> AccessError:
    if what is None:  # the server refused the condition
        tied = conditions(version)
        on = f"ETag {tied['if_match']}" if "if_match" in tied else "its Last-Modified"
        what = f"the server answered 412 to a read tied to {on}" if tied else "412"
    return AccessError(masked(f"{url}: changed while it was read ({what}); a rerun scans it again"))


def read_tied(
    store: Any, path: str, start: int, end: int, version: Mapping[str, Any] | None, url: str
) -> tuple[bytes, dict[str, Any]]:
    """Bytes [start, end) of a remote source and the version its response names.  Given
    a ``version`` (one an earlier response named), the request is conditional on it, and the
    response's own version is checked too, for servers that ignore conditions."""
    try:
        result = obstore.get(store, path, options={"range": (start, end), **conditions(version)})
        data = bytes(result.bytes())
    except PreconditionError:
        raise changed_error(url, version, None) from None
    meta = identity(result.meta)
    if version and (what := differences(version, meta)):
        raise changed_error(url, version, what)
    return data, meta


def _remote_ranges(
    store: Any, path: str, url: str, spans: list[tuple[int, int]], version: Mapping | None
) -> list[bytes]:
    blocks = []
    for start, end in spans:
        data, meta = read_tied(store, path, start, end, version, url)
        version = version or meta  # the first response names the version the rest must be
        blocks.append(data)
    return blocks


def _local_ranges(url: str, spans: list[tuple[int, int]], version: Mapping | None) -> list[bytes]:
    """Spans of a local file, refused when its size or time is not ``version``'s (or, when
    none is given, when they changed while it was read)."""
    path = local_path(url)
    before = local_identity(path)
    version = version or before
    with path.open("rb") as f:
        blocks = [os.pread(f.fileno(), end - start, start) for start, end in spans]
    for now in (before, local_identity(path)):
        if what := differences(version, now):
            raise changed_error(url, version, what)
    if any(len(b) != end - start for b, (start, end) in zip(blocks, spans, strict=True)):
        raise AccessError(f"{url}: cannot read byte ranges (the file ends before them)")
    return blocks


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
