"""A small fake WordPress blog on 127.0.0.1 (random port), for tests of the network sources and alerts.

    from tests.fakeblog import FakeBlog   # or `from fakeblog import FakeBlog` (tests/ is on sys.path)

    with FakeBlog() as blog:
        post = blog.add_post("A title", "First paragraph.\\n\\nSecond.", tags=["PbR"])  # -> the post dict
        blog.add_posts(250)                  # filler posts "Post 1", "Post 2", ...
        blog.edit_post(post["id"], text="New text")  # bumps modified_gmt past every other post
        blog.delete_post(post["id"])
        blog.fail_next(500, times=1)         # next request(s) get HTTP 500 (also 404, 429, 503, ...)
        blog.fail_next("hang", times=1)      # next request waits `hang_seconds` before answering (> timeouts)
        blog.fail_next("truncate")           # next body cut in half (Content-Length matches: a broken document)
        blog.fail_next("drop")               # next body cut in half with the full Content-Length (connection drop)
        blog.fail_next(500, path="/feed/")   # only requests whose path starts with /feed/
        blog.clear_faults()                  # the faults not yet served are dropped
        blog.fail_next("truncate", path="/wp-json", page=2)  # only API page 2
        blog.api_enabled = False             # /wp-json/... -> 404 like a site without the REST API
        blog.feed_enabled = False            # /feed/ -> 404
        blog.url, blog.api_url, blog.feed_url
        blog.requests                        # [Request(method, path, query, headers)] in arrival order;
                                             # headers are case-insensitive (httpx.Headers)

Serves:
  GET /wp-json/wp/v2/posts  per_page (<=100), page, orderby (date|modified|id), order (asc|desc),
                            modified_after, _embed; headers X-WP-Total, X-WP-TotalPages;
                            400 rest_post_invalid_page_number past the last page.
  GET /feed/                RSS 2.0 of the newest `feed_items` posts by date, with content:encoded;
                            ETag and Last-Modified, 304 for If-None-Match / If-Modified-Since.
  anything else             404 HTML page.
Post dicts are WordPress REST shaped (id, date_gmt, modified_gmt, link, title.rendered, content.rendered, ...)
plus `text`, `author_name`, `category_names`, `tag_names`. Times are a fake clock: deterministic.
"""

from __future__ import annotations

import hashlib
import html
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx

EPOCH = datetime(2013, 1, 1, 9, 0, 0)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: httpx.Headers



def serve_local(handler: type[BaseHTTPRequestHandler], **attrs) -> ThreadingHTTPServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) serving a subclass of `handler` that has `attrs`
    as class attributes, running until shutdown()."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (handler,), attrs))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server

class FakeBlog:
    def __init__(self, feed_items: int = 10, hang_seconds: float = 3.0):
        self.posts: list[dict] = []
        self.requests: list[Request] = []
        self.feed_items = feed_items
        self.hang_seconds = hang_seconds
        self.api_enabled = True
        self.feed_enabled = True
        self._faults: list[tuple[int | str, str | None, int | None]] = []
        self._lock = threading.Lock()
        self._clock = 0  # minutes after EPOCH of the newest change
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> FakeBlog:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> FakeBlog:
        self._server = serve_local(_Handler, blog=self)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.url + "/wp-json/wp/v2/posts"

    @property
    def feed_url(self) -> str:
        return self.url + "/feed/"

    # -- content ------------------------------------------------------------------------------
    def _tick(self) -> str:
        self._clock += 1
        return (EPOCH + timedelta(minutes=self._clock)).isoformat()

    def add_post(self, title: str | None = None, text: str | None = None, *, html_content: str | None = None,
                 author: str = "Russell Webster", categories=("Payment by results",), tags=(),
                 slug: str | None = None, date: str | None = None) -> dict:
        """Add a published post; `text` paragraphs are separated by blank lines (or give `html_content`)."""
        with self._lock:
            post_id = max((p["id"] for p in self.posts), default=0) + 1
            when = self._tick()
            title = title or f"Post {post_id}"
            text = text or f"This is post number {post_id} about payment by results and rehabilitation."
            post = {
                "id": post_id, "date": date or when, "date_gmt": date or when, "modified": when,
                "modified_gmt": when, "slug": slug or f"post-{post_id}", "status": "publish", "type": "post",
                "title": {"rendered": html.escape(title, quote=False)},
                "text": text, "author_name": author,
                "category_names": list(categories), "tag_names": list(tags),
            }
            post["link"] = f"{self.url}/{post['slug']}/"
            post["guid"] = {"rendered": f"{self.url}/?p={post_id}"}
            post["content"] = {"rendered": html_content or _paragraphs(text), "protected": False}
            post["excerpt"] = {"rendered": _paragraphs(text.split("\n\n")[0])}
            self.posts.append(post)
            return post

    def add_posts(self, n: int) -> list[dict]:
        return [self.add_post() for _ in range(n)]

    def edit_post(self, post_id: int, *, title: str | None = None, text: str | None = None) -> dict:
        """Change a post's title and/or text; its modified_gmt becomes the newest of the blog."""
        with self._lock:
            post = self.get_post(post_id)
            if title is not None:
                post["title"] = {"rendered": html.escape(title, quote=False)}
            if text is not None:
                post["text"] = text
                post["content"] = {"rendered": _paragraphs(text), "protected": False}
            post["modified"] = post["modified_gmt"] = self._tick()
            return post

    def delete_post(self, post_id: int) -> None:
        with self._lock:
            self.posts.remove(self.get_post(post_id))
            self._tick()

    def get_post(self, post_id: int) -> dict:
        return next(p for p in self.posts if p["id"] == post_id)

    def fail_next(self, kind: int | str, times: int = 1, path: str | None = None, page: int | None = None) -> None:
        """The next `times` requests (to paths starting with `path`, for `?page=page`, if given) fail as
        `kind`: an HTTP status (500, 404, 429, ...), "hang", "truncate" or "drop"."""
        with self._lock:
            self._faults.extend([(kind, path, page)] * times)

    def clear_faults(self) -> None:
        """The faults not yet served are dropped: the blog is back."""
        with self._lock:
            self._faults.clear()

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path.startswith(path)]

    # -- rendering ----------------------------------------------------------------------------
    def _take_fault(self, path: str, query: dict[str, str]):
        with self._lock:
            for i, (kind, prefix, page) in enumerate(self._faults):
                if (prefix is None or path.startswith(prefix)) and (page is None or query.get("page") == str(page)):
                    del self._faults[i]
                    return kind
        return None

    def _api(self, query: dict[str, str]) -> tuple[int, dict, bytes]:
        with self._lock:
            posts = list(self.posts)
        if query.get("modified_after"):
            posts = [p for p in posts if p["modified_gmt"] > query["modified_after"].rstrip("Z")]
        orderby = {"modified": "modified_gmt", "id": "id"}.get(query.get("orderby", "date"), "date_gmt")
        posts.sort(key=lambda p: (p[orderby], p["id"]), reverse=query.get("order", "desc") == "desc")
        per_page = min(int(query.get("per_page", 10)), 100)
        page = int(query.get("page", 1))
        pages = -(-len(posts) // per_page)
        if page > max(pages, 1):
            body = {"code": "rest_post_invalid_page_number", "message": "The page number requested is larger "
                    "than the number of pages available.", "data": {"status": 400}}
            return 400, {}, json.dumps(body).encode()
        chunk = posts[(page - 1) * per_page: page * per_page]
        embed = "_embed" in query
        data = [self._api_post(p, embed) for p in chunk]
        headers = {"X-WP-Total": str(len(posts)), "X-WP-TotalPages": str(pages)}
        return 200, headers, json.dumps(data).encode()

    @staticmethod
    def _api_post(post: dict, embed: bool) -> dict:
        out = {k: v for k, v in post.items() if k not in ("text", "author_name", "category_names", "tag_names")}
        out["author"], out["categories"], out["tags"] = 1, [], []
        if embed:
            out["_embedded"] = {
                "author": [{"id": 1, "name": post["author_name"]}],
                "wp:term": [[{"taxonomy": "category", "name": c} for c in post["category_names"]],
                            [{"taxonomy": "post_tag", "name": t} for t in post["tag_names"]]],
            }
        return out

    def feed_document(self) -> tuple[bytes, str, str]:
        """(RSS body, ETag, Last-Modified) of the current feed."""
        with self._lock:
            posts = sorted(self.posts, key=lambda p: (p["date_gmt"], p["id"]), reverse=True)[: self.feed_items]
            changed = EPOCH + timedelta(minutes=self._clock)
        items = "".join(_rss_item(p) for p in posts)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/">\n<channel>\n'
            f"<title>Russell Webster</title>\n<link>{self.url}</link>\n"
            "<description>Keep up-to-date with drugs and crime</description>\n"
            f"{items}</channel>\n</rss>\n"
        ).encode()
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        return body, etag, format_datetime(changed.replace(tzinfo=timezone.utc), usegmt=True)


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{html.escape(p.strip(), quote=False)}</p>\n" for p in text.split("\n\n") if p.strip())


def _rss_item(p: dict) -> str:
    when = format_datetime(datetime.fromisoformat(p["date_gmt"]).replace(tzinfo=timezone.utc), usegmt=True)
    cats = "".join(f"<category><![CDATA[{c}]]></category>" for c in p["category_names"] + p["tag_names"])
    return (
        f"<item>\n<title>{p['title']['rendered']}</title>\n<link>{p['link']}</link>\n"
        f"<pubDate>{when}</pubDate>\n<dc:creator><![CDATA[{p['author_name']}]]></dc:creator>\n{cats}\n"
        f'<guid isPermaLink="false">{p["guid"]["rendered"]}</guid>\n'
        f"<description><![CDATA[{p['excerpt']['rendered']}]]></description>\n"
        f"<content:encoded><![CDATA[{p['content']['rendered']}]]></content:encoded>\n</item>\n"
    )


class _Handler(BaseHTTPRequestHandler):
    blog: FakeBlog
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        blog = self.blog
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with blog._lock:
            blog.requests.append(Request("GET", parts.path, query, httpx.Headers(list(self.headers.items()))))
        fault = blog._take_fault(parts.path, query)
        if fault == "hang":
            blog._stop.wait(blog.hang_seconds)
            fault = None
        if isinstance(fault, int):
            body = b"<html><body><h1>Error</h1></body></html>" if fault != 404 else b"<html>Not Found</html>"
            extra = {"Retry-After": "0"} if fault in (429, 503) else {}
            return self._send(fault, body, {"Content-Type": "text/html", **extra})
        if parts.path.rstrip("/") == "/wp-json/wp/v2/posts" and blog.api_enabled:
            status, headers, body = blog._api(query)
            return self._send(status, body, {"Content-Type": "application/json; charset=UTF-8", **headers}, fault)
        if parts.path.rstrip("/") == "/feed" and blog.feed_enabled:
            body, etag, last_modified = blog.feed_document()
            headers = {"Content-Type": "application/rss+xml; charset=UTF-8", "ETag": etag,
                       "Last-Modified": last_modified}
            if self._not_modified(etag, last_modified):
                return self._send(304, b"", headers)
            return self._send(200, body, headers, fault)
        self._send(404, b"<!DOCTYPE html><html><body><h1>Page not found</h1></body></html>",
                   {"Content-Type": "text/html; charset=UTF-8"})

    def _not_modified(self, etag: str, last_modified: str) -> bool:
        if self.headers.get("If-None-Match"):
            return self.headers["If-None-Match"] == etag
        since = self.headers.get("If-Modified-Since")
        try:
            return bool(since) and parsedate_to_datetime(since) >= parsedate_to_datetime(last_modified)
        except (TypeError, ValueError):
            return False

    def _send(self, status: int, body: bytes, headers: dict, fault=None) -> None:
        length = len(body)
        if fault == "truncate":
            body = body[: len(body) // 2]
            length = len(body)
        elif fault == "drop":
            body = body[: len(body) // 2]
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(length if status != 304 else 0))
            if fault == "drop":
                self.send_header("Connection", "close")
            self.end_headers()
            if status != 304:
                self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            pass  # the client gave up (timeout): nothing to do
        if fault == "drop":
            self.close_connection = True
