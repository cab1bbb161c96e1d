"""Hostile feed hosts (tests/hostile.py on 127.0.0.1): an endless or 1 GiB body, a trickle, a redirect loop.
Every fetch is bounded in size and in total time and ends in one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc

import pytest
from click.testing import CliRunner
from hostile import HostileHost

from pbrbot.cli import main
from pbrbot.config import load_settings
from pbrbot.sources import SourceError
from pbrbot.sources.http import Fetcher


@pytest.fixture
def host():
    with HostileHost(trickle_interval=2.0) as h:
        yield h


def ingest(data_dir, spec, **env):
    env = {f"PBRBOT_{k.upper()}": str(v) for k, v in env.items()}
    result = CliRunner().invoke(main, ["--data-dir", str(data_dir), "ingest", "--json", spec], env=env)
    return result, result.stderr.strip().splitlines()


def test_endless_body_stops_at_the_size_limit_with_little_memory(host):
    limit = 2_000_000
    tracemalloc.start()
    try:
        with Fetcher(load_settings(http_max_bytes=limit, http_retries=3)) as http:
            with pytest.raises(SourceError) as err:
                http.get(host.url("/forever"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(err.value) == (f"{host.url('/forever')}: the response is larger than 2 MB, the limit "
                              "(PBRBOT_HTTP_MAX_BYTES); not read further")
    assert peak < 3 * limit  # the body read, not the stream: the buffer and one chunk
    assert host.sent < 200 * limit  # and the reading stopped (one try: a size limit is not retried)


def test_declared_length_over_the_limit_is_refused_before_reading(host):
    with Fetcher(load_settings(http_max_bytes=1000)) as http:
        with pytest.raises(SourceError, match=r"larger than 1,000 bytes, the limit \(PBRBOT_HTTP_MAX_BYTES\)"):
            http.get(host.url("/huge"))


def test_ingest_of_an_endless_feed_is_one_line_naming_the_limit(tmp_path, host):
    url = host.url("/forever/feed/")
    result, err = ingest(tmp_path, url, http_max_bytes=1_000_000)
    assert result.exit_code == 1
    assert err == [f"error: {url}: the response is larger than 1 MB, the limit (PBRBOT_HTTP_MAX_BYTES); "
                   "not read further"]


def test_trickling_host_is_given_up_at_the_deadline(tmp_path, host):
    url = host.url("/trickle/feed/")
    started = time.monotonic()
    # each read comes within the 3 s timeout (a byte every 2 s): only the deadline can end this
    result, err = ingest(tmp_path, url, http_deadline=5, http_timeout=3, http_retries=3)
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert err == [f"error: could not read {url}: gave up after 5 s, the limit for one fetch "
                   "(PBRBOT_HTTP_DEADLINE) (still reading the response); check the URL or your network"]
    assert elapsed < 15  # generous: the host would trickle for 10 minutes


def test_stalled_host_with_retries_stays_within_the_deadline(host):
    # no byte at all after the headers: each try times out (1.5 s); three tries would be 4.5 s + backoff,
    # the deadline (2 s) ends it first
    host.trickle_interval = 60.0
    started = time.monotonic()
    with Fetcher(load_settings(http_deadline=2, http_timeout=1.5, http_retries=3), backoff=0.01) as http:
        with pytest.raises(SourceError, match=r"gave up after 2 s, the limit for one fetch"):
            http.get(host.url("/trickle"))
    assert time.monotonic() - started < 10


def test_redirect_loop_is_one_line(tmp_path, host):
    url = host.url("/loop/feed/")
    result, err = ingest(tmp_path, url)
    assert result.exit_code == 1
    assert err == [f"error: {url}: more than 10 redirects (a redirect loop?); check the URL in a browser"]


@pytest.mark.slow
def test_a_1_gib_feed_ends_in_one_line_with_peak_rss_under_300_mb(tmp_path, host):
    """The issue's case as a real process: `pbrbot ingest` of a 1 GiB feed, default limits."""
    # VmHWM: this process's own peak (ru_maxrss would carry over the pytest process's, across fork and exec)
    code = ("import re, sys\nfrom pbrbot.cli import main\ntry:\n    main()\nfinally:\n    print('peak_kb', "
            "re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1], file=sys.stderr)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBRBOT_")}
    url = host.url("/forever/feed/")
    proc = subprocess.run([sys.executable, "-c", code, "--data-dir", str(tmp_path / "d"), "ingest", "--json",
                           url], env=env, capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1
    assert lines[-2] == (f"error: {url}: the response is larger than 20 MB, the limit (PBRBOT_HTTP_MAX_BYTES); "
                         "not read further")
    rss_mb = int(lines[-1].split()[1]) / 1024
    print(f"peak RSS {rss_mb:.0f} MB")
    assert rss_mb < 300, rss_mb
    assert json.loads(proc.stdout)["errors"]
