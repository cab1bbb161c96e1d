"""The one HTTP fetcher of the network sources (httpx).

Bounded: settings.http_timeout bounds each connect and read, settings.http_deadline the whole fetch
(every read and retry), settings.http_max_bytes the body (read in chunks, refused past the limit: a
hostile or broken host can't fill the memory or hold a poll forever). http_retries is the number of
tries. Timeouts, connection errors, 5xx and 429 are retried with exponential backoff and jitter
(Retry-After is respected); a redirect loop is one clear error; any other status is returned for the caller to
judge. Conditional requests: pass the etag / last_modified of the previous fetch and a 304 comes back as
`FetchResult.not_modified`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Self
from urllib.parse import urlsplit

import httpx

from pbrbot.config import Settings
from pbrbot.sources import SourceError

log = logging.getLogger(__name__)

MAX_WAIT = 30.0  # never sleep longer than this between tries, whatever Retry-After says
MAX_REDIRECTS = 10


def is_url(spec: str) -> bool:
    return urlsplit(spec).scheme in ("http", "https")


@dataclass
class FetchResult:
    url: str  # the final URL, after redirects
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")

    def describe(self) -> str:
        """'HTTP 404 Not Found', for messages."""
        try:
            phrase = httpx.codes(self.status).phrase  # type: ignore[attr-defined]  # IntEnum members have it
        except ValueError:
            phrase = ""
        return f"HTTP {self.status} {phrase}".strip()


class Fetcher:
    """GET with timeouts, retries and conditional requests. Use as a context manager (one connection pool)."""

    def __init__(self, settings: Settings, backoff: float = 0.5, sleep=time.sleep):
        self.tries = max(1, settings.http_retries)
        self.timeout = settings.http_timeout
        self.deadline = settings.http_deadline
        self.max_bytes = settings.http_max_bytes
        self.backoff = backoff
        self.sleep = sleep
        self.client = httpx.Client(
            timeout=httpx.Timeout(settings.http_timeout),
            headers={"User-Agent": settings.user_agent},
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def get(self, url: str, params: dict | None = None, etag: str | None = None,
            last_modified: str | None = None) -> FetchResult:
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        deadline = time.monotonic() + self.deadline
        problem = ""
        for attempt in range(1, self.tries + 1):
            wait = None
            try:
                result = self._get_once(url, params, headers, deadline)
            except httpx.TimeoutException:
                problem = "timed out"
            except httpx.TooManyRedirects:
                raise SourceError(f"{url}: more than {MAX_REDIRECTS} redirects (a redirect loop?); "
                                  "check the URL in a browser") from None
            except httpx.TransportError as exc:  # refused, reset, DNS, body cut short
                problem = _transport_problem(exc)
            else:
                if result.status != 429 and result.status < 500:
                    return result
                problem = result.describe()
                wait = _retry_after(result.headers.get("retry-after"))
            if time.monotonic() >= deadline:
                break
            if attempt < self.tries:
                if wait is None:
                    wait = self.backoff * 2 ** (attempt - 1) * (1 + random.random() / 2)
                wait = min(wait, MAX_WAIT)
                if time.monotonic() + wait >= deadline:
                    break
                log.warning("%s: %s; trying again in %.1f s (%d/%d)", url, problem, wait, attempt, self.tries)
                self.sleep(wait)
        else:
            raise SourceError(
                f"could not read {url} after {self.tries} tries: {problem}; check the URL or your network"
            )
        raise self._late(url, problem)

    def _get_once(self, url: str, params: dict | None, headers: dict, deadline: float) -> FetchResult:
        """One GET, its body read in chunks: never more than max_bytes, never past the deadline."""
        remaining = deadline - time.monotonic()
        with self.client.stream("GET", url, params=params, headers=headers,
                                timeout=httpx.Timeout(min(self.timeout, remaining))) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise self._too_big(url)
            body = bytearray()
            with _Watchdog(response, deadline - time.monotonic()) as watchdog:
                try:
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > self.max_bytes:
                            raise self._too_big(url)
                        if time.monotonic() >= deadline:
                            break
                except httpx.HTTPError:
                    if not watchdog.fired:
                        raise
            if watchdog.fired or time.monotonic() >= deadline:
                raise self._late(url, "still reading the response")
        return FetchResult(str(response.url), response.status_code, response.headers, bytes(body))

    def _too_big(self, url: str) -> SourceError:
        return SourceError(f"{url}: the response is larger than {_size(self.max_bytes)}, the limit "
                           "(PBRBOT_HTTP_MAX_BYTES); not read further")

    def _late(self, url: str, problem: str) -> SourceError:
        last = f" ({problem})" if problem else ""
        return SourceError(f"could not read {url}: gave up after {self.deadline:g} s, the limit for one "
                           f"fetch (PBRBOT_HTTP_DEADLINE){last}; check the URL or your network")


class _Watchdog:
    """Cuts a response's connection when its deadline passes, so a read blocked on a server that trickles
    or stalls returns at once (httpx's own timeouts bound each read, not the whole body)."""

    def __init__(self, response: httpx.Response, seconds: float):
        self.response = response
        self.fired = False
        self.timer = threading.Timer(max(seconds, 0.0), self._fire)
        self.timer.daemon = True

    def __enter__(self) -> Self:
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.cancel()

    def _fire(self) -> None:
        self.fired = True
        stream = self.response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's: wakes a blocked read


def _size(n: int) -> str:
    return f"{n / 1_000_000:g} MB" if n >= 1_000_000 else f"{n:,} bytes"


def _transport_problem(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the server closed the connection early"
    return str(exc) or type(exc).__name__


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
