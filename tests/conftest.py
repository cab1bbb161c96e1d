"""Shared fixtures. The real model is loaded once per test session and shared."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """The session's PBRBOT_MODEL_CACHE_DIR: the onnx model is built once per test run, never in ~/.cache."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path, model_cache):
    """No PBRBOT_* variable or .env of the developer's leaks into a test."""
    for key in list(os.environ):
        if key.startswith("PBRBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # the default data dir, outside a checkout
    monkeypatch.setenv("PBRBOT_MODEL_CACHE_DIR", str(model_cache))
    monkeypatch.chdir(tmp_path)


def make_services(data_dir, *, embedder=None, parts=None, **overrides):
    """A Services on a data dir with settings `overrides` (and a ready `embedder`, e.g. the session's, and
    other ready `parts`)."""
    from pbrbot.config import load_settings
    from pbrbot.services import Services

    return Services(load_settings(data_dir=data_dir, **overrides), embedder=embedder, **(parts or {}))


def with_embedder(svc, embedder):
    """The same store and settings with another embedder (e.g. one that fails on purpose)."""
    from pbrbot.services import Services

    return Services(svc.settings, store=svc.store, embedder=embedder)


@pytest.fixture
def services(tmp_path):
    """Fresh, empty engine in a temporary data directory."""
    svc = make_services(tmp_path / "data")
    yield svc
    svc.close()


@pytest.fixture(scope="session")
def real_embedder(model_cache):
    """The packaged all-MiniLM-L6-v2 model with the default backend (onnx), loaded once."""
    from pbrbot.config import load_settings
    from pbrbot.embedding import load_embedder

    return load_embedder(load_settings(model_cache_dir=model_cache))


@pytest.fixture(scope="session")
def torch_embedder():
    """The packaged model with sentence-transformers (the optional torch backend); skips without torch."""
    pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    from pbrbot.config import load_settings
    from pbrbot.embedding import load_embedder

    return load_embedder(load_settings(embed_backend="torch"))


def copy_archive(sample_services, dest: Path) -> Path:
    """A private copy of the indexed sample archive, its database copied with SQLite's backup API: copying the
    file itself would open and close it in this process, which drops the POSIX locks SQLite holds on it here,
    so another process could then checkpoint and delete the -shm under the sample's live connections."""
    src = sample_services.settings.data_dir
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("pbrbot.db*", "*.lock"))
    with sqlite3.connect(dest / "pbrbot.db") as target:
        sample_services.store.db.conn.backup(target)
    return dest


@pytest.fixture(scope="session")
def sample_services(tmp_path_factory, real_embedder):
    """The sample archive ingested and indexed with the real model (read-only for tests)."""
    from pbrbot.ingest import ingest_sample

    svc = make_services(tmp_path_factory.mktemp("sample") / "data", embedder=real_embedder)
    ingest_sample(svc.store, svc.settings)
    svc.run_index(progress=False)
    yield svc
    svc.close()


@pytest.fixture(scope="session")
def onnx_cache(model_cache):
    """The packaged model built for onnxruntime (fp32 + int8) in the session's model cache."""
    from pbrbot.config import load_settings
    from pbrbot.embedding_onnx import ensure_exported

    settings = load_settings(model_cache_dir=model_cache)
    for quantized in (False, True):
        ensure_exported(settings, quantized=quantized)
    return model_cache
