"""The README's "Using it" path on a fresh data directory, offline, through the real CLI and model (issue 13):
an index run on an empty archive, then posts, then ask and index again."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from pbrbot.cli import main

pytestmark = pytest.mark.slow

ENV = {"PBRBOT_EMBED_BACKEND": "onnx-int8"}
README = Path(__file__).resolve().parents[1] / "index" / "README.md"


def data_dir(tmp_path, onnx_cache, name="data") -> Path:
    """A fresh data directory; the model is `onnx_cache`'s (PBRBOT_MODEL_CACHE_DIR, not in the data dir)."""
    data = tmp_path / name
    data.mkdir()
    return data


def cli(data, *args, input=None):
    result = CliRunner().invoke(main, ["--data-dir", str(data), *args], env=ENV, input=input)
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_index_of_an_empty_archive_then_posts_then_ask_and_index(tmp_path, onnx_cache):
    data = data_dir(tmp_path, onnx_cache)
    first = cli(data, "index")  # an empty archive (an ingest that failed offline): an empty index is saved
    assert first.exit_code == 0 and "0 passages searchable" in first.stdout, first.output
    assert cli(data, "ingest", "--sample").exit_code == 0
    early = cli(data, "ask", "--json", "what is justice reinvestment?")
    assert early.exit_code == 0
    assert "5 posts are not indexed yet: run `pbrbot index`" in early.stderr
    assert json.loads(early.stdout)["found"] is False  # searched nothing, and said why
    again = cli(data, "index")  # was: TypeError: memoryview: cannot cast view with zeros in shape or strides
    assert again.exit_code == 0, again.output
    assert re.search(r"embedded \d+ .* (\d+) passages searchable", again.stdout)
    answer = cli(data, "ask", "--json", "what is justice reinvestment?")
    assert answer.exit_code == 0 and "not indexed" not in answer.stderr
    assert json.loads(answer.stdout)["found"] is True

    # Every file the index run left is described in index/README.md, and every file it names exists.
    named = re.findall(r"^\| `([^`]+)`", README.read_text(), re.M)
    patterns = [re.compile(re.escape(n).replace(re.escape("<stamp>"), r"[\w-]+").rstrip("/") + "$") for n in named]
    present = [p.name for p in data.iterdir()]
    assert all(any(p.match(f) for p in patterns) for f in present if not f.startswith("pbrbot.db-")), present
    assert all(any(p.match(f) for f in present) for p in patterns), named


def test_a_bare_index_then_ask_loads_the_sample(tmp_path, onnx_cache):
    data = data_dir(tmp_path, onnx_cache)
    assert cli(data, "index").exit_code == 0
    result = cli(data, "ask", "what is justice reinvestment?")
    assert result.exit_code == 0 and "loading the sample archive" in result.stderr
    assert "justice-reinvestment" in result.stdout


def test_ask_json_stdin_keeps_one_line_per_question_and_text_is_not_wrapped_off_a_terminal(tmp_path, onnx_cache):
    data = data_dir(tmp_path, onnx_cache)
    result = cli(data, "ask", "--json", "-", input="What is a SIB?\n\n  \nWhat is the first commandment?\n")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 4
    assert lines[1] == lines[2] == {"question": "", "error": "empty question"}
    assert lines[0]["question"] == "What is a SIB?" and lines[3]["question"] == "What is the first commandment?"
    quote = json.loads(cli(data, "ask", "--json", "what is the first commandment?").stdout)["quotes"][0]["text"]
    text = cli(data, "ask", "what is the first commandment?").stdout
    assert f"  “{quote}”\n" in text  # one line, however long (stdout is not a terminal)
