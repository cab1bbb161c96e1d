"""Settings come from PBRBOT_* variables and .env; secrets never show."""

from __future__ import annotations

from pathlib import Path

from pbrbot.config import load_settings


def test_defaults(tmp_path):
    s = load_settings()
    assert s.data_dir == Path("index")
    assert s.discord_token is None
    assert s.embed_backend == "onnx-int8"  # torch is an optional extra


def test_environment_and_dotenv(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("PBRBOT_DISCORD_TOKEN=sekrit-token\nPBRBOT_DEV_GUILD_ID=\n"
                                   "PBRBOT_POLL_MINUTES=2.5\n")
    monkeypatch.setenv("PBRBOT_DATA_DIR", str(tmp_path / "d"))
    s = load_settings()
    assert s.data_dir == tmp_path / "d"
    assert s.poll_minutes == 2.5
    assert s.dev_guild_id is None  # empty values are ignored, as in .env.example
    assert s.discord_token.get_secret_value() == "sekrit-token"
    assert "sekrit" not in repr(s) and "sekrit" not in str(s.model_dump())


def test_explicit_override_beats_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PBRBOT_DATA_DIR", "/from/env")
    assert load_settings(data_dir=tmp_path).data_dir == tmp_path
    assert load_settings(data_dir=None).data_dir == Path("/from/env")


def test_env_example_lists_every_setting():
    from pbrbot.config import Settings

    example = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    for name in Settings.model_fields:
        assert f"PBRBOT_{name.upper()}=" in example, name
