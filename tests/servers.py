"""Real servers on loopback for the end-to-end tests: HTTP with Range support, and S3 (moto).

The HTTP server listens on port 80 because Icechunk 1.1 drops an explicit port from virtual
chunk URLs (see docs/notes.md).  It can also misbehave on request: paths under /fault/ answer
404, 403, an HTML error page, 503 a few times before serving the file, or 405 to HEAD.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from aiohttp import web


class HTTPServer:
    """Serves a folder over http://127.0.0.1/ (port 80), counting requests, the bytes they
    asked for, and how many were in flight at once. ``delay_s`` answers every request that
    much later (a WAN); ``cap`` serves at most that many at once (a busy server); ``refuse``
    closes every connection at once (an outage)."""

    def __init__(self, root: Path, port: int = 80, host: str = "127.0.0.1"):
        self.root, self.port, self.host = root, port, host
        self.active = 0
        self.max_active = 0
        self.requests: Counter[str] = Counter()
        self.per_path: Counter[str] = Counter()
        self.intervals: list[tuple[float, float]] = []  # when each request was served
        self.bytes_sent = 0
        self.failures_left: dict[str, int] = {}
        self.delay_s = 0.0
        self.cap: int | None = None
        self.refuse = False
        self._slots: asyncio.Semaphore | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}" + ("" if self.port == 80 else f":{self.port}")

    def start(self) -> HTTPServer:
        self._thread.start()
        if not self._ready.wait(10) or self._error:
            raise RuntimeError(
                f"the HTTP test server could not listen on {self.host}:{self.port} "
                f"({self._error}); port 80 needs root (or CAP_NET_BIND_SERVICE) and must be free"
            )
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def reset_counts(self) -> None:
        self.active = self.max_active = self.bytes_sent = 0
        self.requests.clear()
        self.per_path.clear()
        self.intervals.clear()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            self._loop.run_until_complete(site.start())
        except OSError as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())  # close open connections quietly

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.refuse:
            request.transport.close()
            raise web.HTTPServiceUnavailable()
        if self.cap and self._slots is None:
            self._slots = asyncio.Semaphore(self.cap)
        if self._slots is not None:
            async with self._slots:
                return await self._counted(request)
        return await self._counted(request)

    async def _counted(self, request: web.Request) -> web.StreamResponse:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.requests[request.method] += 1
        self.per_path[request.path] += 1
        start = time.monotonic()
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            response = await self._answer(request)
            if request.method == "GET":
                self.bytes_sent += self._length(request)
            return response
        finally:
            self.active -= 1
            self.intervals.append((start, time.monotonic()))

    def _length(self, request: web.Request) -> int:
        path = request.match_info["path"]
        if path.startswith("fault/"):
            path = path.split("/", 2)[-1]
        file = (self.root / path).resolve()
        size = file.stat().st_size if file.is_file() else 0
        ranges = request.http_range
        start = ranges.start or 0
        stop = size if ranges.stop is None else min(ranges.stop, size)
        if start < 0:
            start = max(0, size + start)
        return max(0, stop - start)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        if path.startswith("fault/"):
            _, kind, rest = path.split("/", 2)
            if kind in ("404", "403"):
                raise web.HTTPNotFound() if kind == "404" else web.HTTPForbidden()
            if kind == "html":
                return web.Response(
                    text="<!DOCTYPE html><html><body>Error</body></html>", content_type="text/html"
                )
            if kind == "nohead" and request.method == "HEAD":
                raise web.HTTPMethodNotAllowed("HEAD", ["GET"])
            if kind == "flaky":
                left = self.failures_left.setdefault(rest, 2)
                if left > 0:
                    self.failures_left[rest] = left - 1
                    raise web.HTTPServiceUnavailable()
            path = rest
        file = (self.root / path).resolve()
        if not file.is_file() or self.root.resolve() not in file.parents:
            raise web.HTTPNotFound()
        return web.FileResponse(file)


def most_at_once(*servers: HTTPServer) -> int:
    """The most requests the servers were serving at one moment, all of them together."""
    events = sorted(
        (t, step) for s in servers for a, b in s.intervals for t, step in ((a, 1), (b, -1))
    )
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """moto_server on a free loopback port, with test credentials in the environment."""

    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self._proc: subprocess.Popen | None = None

    def start(self) -> S3Server:
        exe = Path(sys.executable).with_name("moto_server")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
        self._proc = subprocess.Popen(
            [*cmd, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                os.environ.update(self.env)
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("moto_server did not start")

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        if self._proc:
            self._proc.terminate()
            self._proc.wait(10)
