"""The sample archive that ships with the package: five real posts of the blog."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def sample_dir() -> Path:
    return Path(str(resources.files("pbrbot") / "sample"))


def seed_questions_path() -> Path:
    return sample_dir() / "seed-questions.jsonl"
