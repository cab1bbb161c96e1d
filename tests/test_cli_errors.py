"""A newcomer's setup mistakes: one `error:` line naming the cause and the next step, a non-zero exit, no
traceback, and nothing created or lost (issue 13)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pbrbot.cli import main

SRC = Path(__file__).resolve().parents[1] / "src"
POSTS = [{"url": f"https://example.org/post-{n}/", "title": f"Post {n}", "date": f"2020-01-0{n}",
          "text": f"Post {n} is about probation and payment by results, sentence {n}. " * 5} for n in (1, 2, 3)]


def cli(*args, env=None, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, input=input)


def one_error_line(result, *words):
    """The failure was reported as one `error:` line holding `words`, without a traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert "Traceback" not in result.output and "Error:" not in result.output, result.output
    for word in words:
        assert word in lines[-1], lines[-1]


def jsonl(tmp_path, posts=POSTS, name="posts.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(p) + "\n" for p in posts), encoding="utf-8")
    return path


def unprivileged() -> list[str]:
    """A prefix that runs a command subject to file permissions (root ignores them otherwise)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a directory unwritable")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def run(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([*unprivileged(), sys.executable, "-m", "pbrbot", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


def read_only(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def writable_again(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


# -- data directories ----------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["posts"], ["show", "https://example.org/post-1/"], ["ask", "what is PbR?"],
                                     ["search", "PbR"], ["define", "PbR"]])
def test_reading_commands_never_create_a_missing_archive(tmp_path, command):
    where = tmp_path / "nonexistent" / "deeper" / "dir"
    result = cli("--data-dir", where, *command)
    assert result.exit_code == 1
    one_error_line(result, str(where), "--data-dir")
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize("command", [["posts"], ["ingest", "POSTS"], ["ask", "what is PbR?"], ["index"]])
def test_a_data_dir_that_is_a_file(tmp_path, command):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    result = cli("--data-dir", path, *[str(jsonl(tmp_path)) if a == "POSTS" else a for a in command])
    assert result.exit_code == 1
    one_error_line(result, str(path), "is a file", "--data-dir")
    assert path.read_text() == "mine"


def test_an_unwritable_data_dir(tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    read_only(parent)
    try:
        result = run("--data-dir", parent / "data", "ingest", jsonl(tmp_path))
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("error: cannot create the data directory") and "Traceback" not in result.stderr
        assert len(result.stderr.splitlines()) == 1 and "--data-dir" in result.stderr
        result = run("--data-dir", parent, "ingest", jsonl(tmp_path))  # the directory exists, the db cannot be made
        assert result.returncode == 1 and result.stderr.startswith("error: cannot create or write the archive")
        assert "Traceback" not in result.stderr
    finally:
        writable_again(parent)


def test_a_read_only_archive_can_be_read(tmp_path):
    data = tmp_path / "data"
    assert cli("--data-dir", data, "ingest", jsonl(tmp_path)).exit_code == 0
    read_only(data)
    before = sorted(p.name for p in data.iterdir())
    try:
        result = run("--data-dir", data, "posts", "--json")
        assert result.returncode == 0, result.stderr
        assert [p["url"] for p in json.loads(result.stdout)] == [p["url"] for p in reversed(POSTS)]
        result = run("--data-dir", data, "show", POSTS[0]["url"])
        assert result.returncode == 0 and "Post 1 is about probation" in result.stdout, result.stderr
        result = run("--data-dir", data, "ask", "what is payment by results?")  # no index, cannot make one
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.strip() == (f"error: the archive in {data} has no search index and is read-only: "
                                         "run `pbrbot index` where it can be written")
        result = run("--data-dir", data, "ingest", jsonl(tmp_path))
        assert result.returncode == 1 and result.stderr.startswith("error: cannot open for writing the archive")
        assert "Traceback" not in result.stderr
    finally:
        writable_again(data)
    assert sorted(p.name for p in data.iterdir()) == before  # nothing written, not even a -shm file


def test_default_data_dir_is_the_checkouts_index_else_per_user(tmp_path, monkeypatch):
    from pbrbot.config import load_settings

    assert load_settings().data_dir == tmp_path / "xdg" / "pbrbot"  # conftest: XDG_DATA_HOME, cwd tmp_path
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load_settings().data_dir == tmp_path / "home" / ".local" / "share" / "pbrbot"
    (tmp_path / "index").mkdir()
    assert load_settings().data_dir == tmp_path / "home" / ".local" / "share" / "pbrbot"  # any index/ is not ours
    (tmp_path / "index" / "README.md").write_text("# index/: the default data directory\n")
    assert load_settings().data_dir == Path("index")
    monkeypatch.setenv("PBRBOT_DATA_DIR", str(tmp_path / "mine"))
    assert load_settings().data_dir == tmp_path / "mine"


def test_another_folder_uses_the_same_default_archive_and_says_which(tmp_path, monkeypatch):
    where = tmp_path / "xdg" / "pbrbot"
    first = cli("ingest", jsonl(tmp_path))
    assert first.exit_code == 0 and f"a new archive in {where}" in first.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = cli("posts")
    assert result.exit_code == 0 and result.stdout.endswith(f"3 posts in {where}\n")
    assert "new archive" not in cli("ingest", jsonl(tmp_path)).stderr
    assert not (elsewhere / "index").exists()


# -- settings and usage ------------------------------------------------------------------------------
def test_bad_settings_name_the_variables_and_exit_2(tmp_path):
    result = cli("posts", env={"PBRBOT_HTTP_TIMEOUT": "soon", "PBRBOT_INDEX_TYPE": "fast",
                               "PBRBOT_DISCORD_TOKEN": "x" * 3})
    assert result.exit_code == 2
    one_error_line(result, "PBRBOT_HTTP_TIMEOUT", "'soon'", "PBRBOT_INDEX_TYPE", "'fast'")
    assert "http_timeout" not in result.stderr


def test_usage_errors_use_the_same_prefix_and_exit_2(tmp_path):
    result = cli("--data-dir", tmp_path / "d", "show")
    assert result.exit_code == 2
    one_error_line(result, "Missing argument 'URL'")
    assert cli("--data-dir", tmp_path / "d", "ingest", jsonl(tmp_path)).exit_code == 0
    result = cli("--data-dir", tmp_path / "d", "show", "https://example.org/none/")
    assert result.exit_code == 1
    one_error_line(result, "no stored post has the URL")


# -- ingest: exit codes, warnings, progress -----------------------------------------------------
def test_ingest_with_a_missing_source_is_partly_done(tmp_path):
    result = cli("--data-dir", tmp_path / "d", "ingest", jsonl(tmp_path), tmp_path / "missing.jsonl")
    assert result.exit_code == 3  # partly done: the good file is stored
    assert result.stdout.startswith("3 new, 0 updated, 0 unchanged, 0 skipped")
    assert "error: " in result.stderr and "missing.jsonl" in result.stderr and "Traceback" not in result.output
    result = cli("--data-dir", tmp_path / "d", "ingest", tmp_path / "missing.jsonl")
    assert result.exit_code == 1  # nothing read: an error


def test_a_bad_optional_date_keeps_the_post_undated_with_a_warning(tmp_path):
    posts = [POSTS[0], {**POSTS[1], "date": "last Tuesday-ish"}]
    result = cli("--data-dir", tmp_path / "d", "ingest", "--json", jsonl(tmp_path, posts))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["new"] == 2 and report["skipped"] == []
    assert report["warnings"] == [{"source": str(tmp_path / "posts.jsonl"), "where": "line 2",
                                   "reason": "'date' 'last Tuesday-ish' is not an ISO 8601 date: kept undated"}]
    assert "warning: " in result.stderr and "line 2" in result.stderr
    stored = {p["url"]: p for p in json.loads(cli("--data-dir", tmp_path / "d", "posts", "--json").stdout)}
    assert stored[POSTS[1]["url"]]["date"] is None and stored[POSTS[0]["url"]]["date"] == "2020-01-01"


def test_the_ingest_progress_bar_counts_posts_without_a_false_total(tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    many = [{**POSTS[0], "url": f"https://example.org/p{n}/", "title": f"P {n}"} for n in range(120)]
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # a terminal 80 columns wide
    try:
        proc = subprocess.run([sys.executable, "-m", "pbrbot", "--data-dir", str(tmp_path / "d"), "ingest",
                               str(jsonl(tmp_path, many))], env={**os.environ, "PYTHONPATH": str(SRC)},
                              stdout=subprocess.PIPE, stderr=slave, text=True, timeout=120)
        os.close(slave)
        err = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            err += chunk
    finally:
        os.close(master)
    assert proc.returncode == 0 and proc.stdout.startswith("120 new")
    bar = err.decode()
    assert "ingesting: 120 posts" in bar and "/0" not in bar, bar


# -- show --json ---------------------------------------------------------------------------------
def test_show_json_is_the_stored_post(tmp_path):
    data = tmp_path / "d"
    cli("--data-dir", data, "ingest", jsonl(tmp_path))
    result = cli("--data-dir", data, "show", "--json", POSTS[1]["url"])
    assert result.exit_code == 0, result.output
    post = json.loads(result.stdout)
    assert {k: post[k] for k in ("url", "title", "date")} == {k: POSTS[1][k] for k in ("url", "title", "date")}
    assert post["text"].startswith("Post 2 is about probation") and post["words"] == len(post["text"].split())
    assert post["tags"] == [] and post["author"] is None


# -- pbrbot run ------------------------------------------------------------------------------------
def test_run_refuses_the_placeholder_token_without_asking_discord(tmp_path):
    example = Path(__file__).resolve().parents[1] / ".env.example"
    (tmp_path / ".env").write_text(example.read_text())  # copied as the README says, token not filled in
    result = cli("--data-dir", tmp_path / "d", "run")
    assert result.exit_code == 2  # bad settings: bot/pbrbot.service does not restart
    one_error_line(result, "PBRBOT_DISCORD_TOKEN", "placeholder", ".env.example")
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("command", ["run", "sync-commands"])
def test_run_when_discord_cannot_be_reached_is_one_line(tmp_path, command):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(SRC), "PBRBOT_DISCORD_TOKEN": "MTA.fake.token",
           "PBRBOT_DISCORD_API_BASE": f"http://127.0.0.1:{port}/api/v10"}
    result = subprocess.run([sys.executable, "-m", "pbrbot", "--data-dir", str(tmp_path / "d"), command], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors == [result.stderr.strip().splitlines()[-1]], result.stderr
    assert errors[0].startswith("error: cannot reach Discord (127.0.0.1:") and "network" in errors[0]
    assert len(result.stderr.strip().splitlines()) == 1 and "PyNaCl" not in result.stderr


# -- small things ------------------------------------------------------------------------------------
def test_quotes_wrap_at_the_given_width_or_not_at_all():
    from pbrbot.cli.answers import quote_width, render
    from pbrbot.models import Answer, Quote

    text = " ".join(f"word{n}" for n in range(60))
    answer = Answer(question="q", found=True, quotes=[Quote(text=text, url="https://x/", link="https://x/#:~:text=a",
                                                            title="T", date="2013-06-13", score=0.5)])
    narrow = render(answer, 50).splitlines()
    assert len(narrow) > 5 and all(len(line) <= 50 for line in narrow[:-2])
    assert " ".join(line.strip() for line in narrow[:-2]) == f"“{text}”"
    assert render(answer, None).splitlines()[0] == f"  “{text}”"
    assert quote_width() is None  # pytest's stdout is not a terminal


@pytest.mark.parametrize("model, offline", [("all-MiniLM-L6-v2", "1"), ("BAAI/bge-small-en-v1.5", None)])
def test_hub_offline_is_only_the_default_for_the_packaged_model(tmp_path, monkeypatch, model, offline):
    from pbrbot.config import load_settings
    from pbrbot.services import Services

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    Services(load_settings(data_dir=tmp_path / "d", model=model))
    assert os.environ.get("HF_HUB_OFFLINE") == offline


def test_every_command_is_found_through_its_module():
    """Commands are imported lazily (pbrbot.cli.COMMAND_MODULES): each is listed by --help and named
    under the module that defines it."""
    import importlib

    from pbrbot.cli import COMMAND_MODULES

    for module in set(COMMAND_MODULES.values()):
        for command in importlib.import_module(f"pbrbot.cli.{module}").COMMANDS:
            assert COMMAND_MODULES.get(command.name) == module, command.name
    listed = CliRunner().invoke(main, ["--help"]).output
    assert all(f"  {name} " in listed for name in COMMAND_MODULES)
