"""A full disk, for real: each case runs pbrbot in a private mount namespace (`unshare -rm`) whose data
directory is a tiny tmpfs. Linux only; skipped where unprivileged user namespaces are not allowed.

Each case ends in one line (no traceback) and leaves the data as it was: the database passes SQLite's
integrity check, the previous vector index loads, and no temp or orphan index file stays behind."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow
FULL = "error: the disk is full"


def in_tiny_disk(tmp_path, size: str, script: str) -> subprocess.CompletedProcess:
    """Run the shell `script` with $D a fresh tmpfs of `size` (gone when the script ends)."""
    disk = tmp_path / "disk"
    disk.mkdir(exist_ok=True)
    return subprocess.run(["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size={size} tmpfs "$D" && {script}'],
                          env={**_env(), "D": str(disk), "PY": sys.executable}, capture_output=True, text=True,
                          timeout=300)


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("PBRBOT_")} | {"PBRBOT_MODEL": "fake:64"}


@pytest.fixture(autouse=True)
def _needs_namespaces(tmp_path):
    if sys.platform != "linux" or not shutil.which("unshare"):
        pytest.skip("needs Linux and unshare")
    if in_tiny_disk(tmp_path, "64k", "true").returncode != 0:
        pytest.skip("unprivileged user and mount namespaces are not allowed here")


def posts_file(path, n: int, words: int = 300):
    with open(path, "w") as f:
        for i in range(n):
            text = " ".join(f"word{i}x{j}" for j in range(words))
            f.write(json.dumps({"url": f"https://blog.example/p{i}/", "title": f"Post {i}", "text": text,
                                "date": "2020-01-01"}) + "\n")
    return path


CHECK = ('"$PY" -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); '
         'print(c.execute(\'pragma integrity_check\').fetchone()[0], c.execute(\'select count(*) from posts\')'
         '.fetchone()[0])" "$D/pbrbot.db"; ls -a "$D"')


def test_ingest_onto_a_full_disk_is_one_line_and_keeps_what_was_stored(tmp_path):
    source = posts_file(tmp_path / "posts.jsonl", 1500)  # ~4 MB of text for a 1 MB disk
    run = in_tiny_disk(tmp_path, "1m", f'"$PY" -m pbrbot --data-dir "$D" ingest {source}; echo "rc=$?"; {CHECK}')
    lines = run.stdout.splitlines()
    assert "rc=1" in lines, run.stdout + run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith(FULL), run.stderr
    assert "Traceback" not in run.stderr
    status, count = lines[lines.index("rc=1") + 1].split()
    assert status == "ok" and 0 < int(count) < 1500  # what was stored before stays, intact


def test_index_onto_a_full_disk_is_one_line_and_leaves_no_orphan_files(tmp_path):
    source = posts_file(tmp_path / "posts.jsonl", 40, words=100)
    script = (f'"$PY" -m pbrbot --data-dir "$D" ingest {source} >/dev/null && '
              '"$PY" -m pbrbot --data-dir "$D" index >/dev/null 2>&1 && '
              f'"$PY" -m pbrbot --data-dir "$D" ingest {posts_file(tmp_path / "more.jsonl", 60, 40)} >/dev/null && '
              'dd if=/dev/zero of="$D/filler" bs=4k 2>/dev/null; truncate -s -160k "$D/filler"; '  # nearly full
              f'"$PY" -m pbrbot --data-dir "$D" index; echo "rc=$?"; {CHECK}')
    run = in_tiny_disk(tmp_path, "3m", script)
    lines = run.stdout.splitlines()
    assert "rc=1" in lines, run.stdout + run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith(FULL), run.stderr
    assert "Traceback" not in run.stderr
    files = lines[lines.index("rc=1") + 2:]
    assert lines[lines.index("rc=1") + 1] == "ok 60"  # posts 0-59 (the second file updated 0-39)
    assert not [f for f in files if f.endswith(".tmp")], files
    assert len([f for f in files if f.endswith(".faiss")]) == 1 and len([f for f in files if f.endswith(".f32")]) == 1


SAVE = textwrap.dedent("""
    import errno, os, sys
    import numpy as np
    from pbrbot.vectors import VectorIndex
    d = sys.argv[1]
    vi = VectorIndex("m", 384, "flat")
    vi.add(np.arange(100), np.random.default_rng(0).random((100, 384), dtype=np.float32))
    vi.save(d)
    before = sorted(os.listdir(d))
    vi.add(np.arange(100, 5100), np.random.default_rng(1).random((5000, 384), dtype=np.float32))  # 7.7 MB
    try:
        vi.save(d)
    except OSError as exc:
        print("errno", errno.errorcode[exc.errno])
    print("same files", sorted(os.listdir(d)) == before)
    print("loads", len(VectorIndex.load(d, "m")))
""")


def test_a_failed_index_save_leaves_the_previous_index_and_no_orphans(tmp_path):
    (tmp_path / "save.py").write_text(SAVE)
    run = in_tiny_disk(tmp_path, "1m", f'"$PY" {tmp_path / "save.py"} "$D"')
    assert run.stdout.splitlines() == ["errno ENOSPC", "same files True", "loads 100"], run.stdout + run.stderr


def test_a_disk_too_full_to_open_the_database_is_one_line(tmp_path):
    source = posts_file(tmp_path / "posts.jsonl", 5, words=50)
    run = in_tiny_disk(tmp_path, "1m", f'"$PY" -m pbrbot --data-dir "$D" ingest {source} >/dev/null && '
                       'dd if=/dev/zero of="$D/filler" bs=4k 2>/dev/null; rm -f "$D/pbrbot.db-shm"; '
                       '"$PY" -m pbrbot --data-dir "$D" posts; echo "rc=$?"')
    assert "rc=1" in run.stdout.splitlines(), run.stdout + run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "disk I/O error" in last and "Traceback" not in run.stderr
