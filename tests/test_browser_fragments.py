"""Text-fragment links in a real browser (headless Chromium, skipped when it is not installed): a post's
blocks rendered as HTML on a local server, the answerer's link opened on it, and the page reports whether
the browser scrolled the quote's block into view. A term spanning a heading and its paragraph (what links
were like before blocks were kept) does not scroll: the check can fail."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pbrbot.blocks import stored_spans

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium (apt-get install chromium)")]
TAGS = {"p": "p", "h": "h2", "li": "li", "quote": "blockquote", "caption": "figcaption"}
SPACER = "".join(f"<p>Filler paragraph {i} above the post, so that the quote is below the fold.</p>" for i in range(60))
REPORT = ("<script>setTimeout(function () { var r = document.getElementById('target').getBoundingClientRect();"
          "document.body.setAttribute('data-y', String(window.scrollY));"
          "document.body.setAttribute('data-seen', String(r.top >= 0 && r.top < window.innerHeight)); }, 1500);"
          "</script>")


def render(text: str, spans, target: int) -> str:
    body = []
    for n, (kind, s, e) in enumerate(spans):
        tag = TAGS[kind]
        item = f"<{tag}{' id=target' if n == target else ''}>{html.escape(text[s:e])}</{tag}>"
        body.append(f"<ul>{item}</ul>" if kind == "li" else item)
    return f"<!doctype html><html><head><meta charset=utf-8></head><body>{SPACER}{''.join(body)}{REPORT}</body></html>"


@pytest.fixture
def server():
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            page = pages.get(self.path.split("#")[0])
            self.send_response(200 if page else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write((page or "").encode("utf-8"))

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield pages, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def open_in_chromium(url: str) -> tuple[float, bool]:
    out = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=800,600",
                          "--virtual-time-budget=5000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120).stdout
    y = re.search(r'data-y="([0-9.]+)"', out)
    seen = re.search(r'data-seen="(true|false)"', out)
    assert y and seen, out[-500:]
    return float(y.group(1)), seen.group(1) == "true"


def test_answer_links_scroll_to_the_quote_in_chromium(sample_services, server):
    pages, base = server
    store = sample_services.store
    checked = 0
    for question in ("What is justice reinvestment?", "Who chaired the Policy Exchange event?",
                     "How were savings shared between the MoJ and local partners?"):
        answer = sample_services.answerer.ask(question)
        for quote in answer.quotes[:2]:
            row = store.get_post_by_url(quote.url)
            spans = stored_spans(row["text"], row["blocks"])
            first = quote.text.split(" … ")[0]
            target = next(n for n, (_, s, e) in enumerate(spans) if first in " ".join(row["text"][s:e].split()))
            path = f"/post{checked}.html"
            pages[path] = render(row["text"], spans, target)
            y, seen = open_in_chromium(base + path + quote.link[quote.link.index("#"):])
            assert y > 0 and seen, (quote.link, y)
            checked += 1
    assert checked >= 4
    # The control: a start term running from a heading into its paragraph is not found, nothing scrolls.
    pages["/control.html"] = render("What is parking?\n\nParking is when a provider ignores the hard cases.",
                                    [("h", 0, 16), ("p", 18, 68)], 1)
    assert open_in_chromium(base + "/control.html#:~:text=What%20is%20parking%3F%20Parking") == (0.0, False)
