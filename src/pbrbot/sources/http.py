"""The one HTTP fetcher of the network sources (httpx).

Timeouts come from settings.http_timeout; settings.http_retries is the number of tries. Timeouts,
connection errors, 5xx and 429 are retried with exponential backoff and jitter (Retry-After is
respected); any other status is returned for the caller to judge. Conditional requests: pass the
etag / last_modified of the previous fetch and a 304 comes back as `FetchResult.not_modified`.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from pbrbot.config import Settings
from pbrbot.sources import SourceError

log = logging.getLogger(__name__)

MAX_WAIT = 30.0  # never sleep longer than this between tries, whatever Retry-After says


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

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def describe(self) -> str:
        """'HTTP 404 Not Found', for messages."""
        try:
            phrase = httpx.codes(self.status).phrase
        except ValueError:
            phrase = ""
        return f"HTTP {self.status} {phrase}".strip()


class Fetcher:
    """GET with timeouts, retries and conditional requests. Use as a context manager (one connection pool)."""

    def __init__(self, settings: Settings, backoff: float = 0.5, sleep=time.sleep):
        self.tries = max(1, settings.http_retries)
        self.backoff = backoff
        self.sleep = sleep
        self.client = httpx.Client(
            timeout=httpx.Timeout(settings.http_timeout),
            headers={"User-Agent": settings.user_agent},
            follow_redirects=True,
        )

    def __enter__(self) -> Fetcher:
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
        problem = ""
        for attempt in range(1, self.tries + 1):
            wait = None
            try:
                response = self.client.get(url, params=params, headers=headers)
                body = response.read()
            except httpx.TimeoutException:
                problem = "timed out"
            except httpx.TransportError as exc:  # refused, reset, DNS, body cut short
                problem = _transport_problem(exc)
            else:
                result = FetchResult(str(response.url), response.status_code, response.headers, body)
                if response.status_code != 429 and response.status_code < 500:
                    return result
                problem = result.describe()
                wait = _retry_after(response.headers.get("retry-after"))
            if attempt < self.tries:
                if wait is None:
                    wait = self.backoff * 2 ** (attempt - 1) * (1 + random.random() / 2)
                wait = min(wait, MAX_WAIT)
                log.warning("%s: %s; trying again in %.1f s (%d/%d)", url, problem, wait, attempt, self.tries)
                self.sleep(wait)
        raise SourceError(
            f"could not read {url} after {self.tries} tries: {problem}; check the URL or your network"
        )


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
