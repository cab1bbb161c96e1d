"""Test doubles. FakeEmbedder is for tests of the index plumbing only; quality tests use the real model."""

from __future__ import annotations

from pbrbot.embedding import HashEmbedder

# The same deterministic hashing embedder that PBRBOT_MODEL=fake:DIM selects (so a subprocess can use it).
FakeEmbedder = HashEmbedder

__all__ = ["FakeEmbedder"]
