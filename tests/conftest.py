"""Shared fixtures. The real model is loaded once per test session and shared."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No PBRBOT_* variable or .env of the developer's leaks into a test."""
    for key in list(os.environ):
        if key.startswith("PBRBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # the default data dir, outside a checkout
    monkeypatch.chdir(tmp_path)


def make_services(data_dir, **overrides):
    from pbrbot.config import load_settings
    from pbrbot.services import Services

    return Services(load_settings(data_dir=data_dir, **overrides))


@pytest.fixture
def services(tmp_path):
    """Fresh, empty engine in a temporary data directory."""
    svc = make_services(tmp_path / "data")
    yield svc
    svc.close()


@pytest.fixture(scope="session")
def real_embedder():
    """The packaged all-MiniLM-L6-v2 model, loaded once."""
    from pbrbot.config import load_settings
    from pbrbot.embedding import load_embedder

    return load_embedder(load_settings())


@pytest.fixture(scope="session")
def sample_services(tmp_path_factory, real_embedder):
    """The sample archive ingested and indexed with the real model (read-only for tests)."""
    from pbrbot.indexer import run_index
    from pbrbot.ingest import ingest_sample

    svc = make_services(tmp_path_factory.mktemp("sample") / "data")
    svc.__dict__["embedder"] = real_embedder
    ingest_sample(svc)
    run_index(svc, progress=False)
    yield svc
    svc.close()


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory):
    """The packaged model exported to ONNX once (fp32 + int8); link it as DATA_DIR/onnx to reuse it."""
    from pbrbot.config import load_settings
    from pbrbot.embedding_onnx import ensure_exported, onnx_dir

    settings = load_settings(data_dir=tmp_path_factory.mktemp("onnx") / "data")
    ensure_exported(settings, quantized=True)
    return onnx_dir(settings).parent
