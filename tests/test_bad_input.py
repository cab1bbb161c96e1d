"""Questions that are not UTF-8: one clear line for that question, and a batch answers all the others."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from pbrbot.cli import main

pytestmark = pytest.mark.slow


def test_a_batch_with_an_invalid_utf8_line_answers_every_other_line(sample_services):
    data = ["--data-dir", str(sample_services.settings.data_dir)]
    batch = b"What is a SIB?\n\xff\xfe broken \xe9\n\nWhat is the first commandment?\n"
    out = CliRunner().invoke(main, [*data, "ask", "--json", "-"], input=batch)
    assert out.exit_code == 1
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    # one output line per input line: the blank one is an empty question
    assert [line.get("question") for line in lines] == ["What is a SIB?", None, "", "What is the first commandment?"]
    assert lines[0]["found"] and lines[3]["found"] and lines[2]["error"] == "empty question"
    problem = "line 2: the question is not valid UTF-8 (byte 1); it was skipped"
    assert lines[1] == {"line": 2, "error": problem}
    assert out.stderr.splitlines() == [f"error: {problem}"]


@pytest.mark.parametrize("command", ["ask", "search", "define"])
def test_an_invalid_utf8_argument_is_one_line(sample_services, command):
    """As the shell passes it: bytes in argv, which Python decodes with surrogateescape."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBRBOT_")}
    run = subprocess.run([sys.executable, "-m", "pbrbot", "--data-dir", str(sample_services.settings.data_dir),
                          command, b"caf\xe9 prices"], env=env, capture_output=True, timeout=120)
    what = {"ask": "question", "search": "query", "define": "term"}[command]
    assert run.returncode == 1
    assert run.stderr.decode().splitlines() == [
        f"error: the {what} is not valid UTF-8 (character 4); write it in UTF-8 and try again"]
