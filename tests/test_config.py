"""Settings come from PBRBOT_* variables and .env; secrets never show."""

from __future__ import annotations

from pathlib import Path

from pbrbot.config import load_settings


def test_defaults(tmp_path):
    s = load_settings()
    assert s.data_dir == tmp_path / "xdg" / "pbrbot"  # not a checkout: the per-user directory (conftest's XDG)
    assert s.discord_token is None
    assert s.embed_backend == "onnx"  # onnxruntime; torch is an optional extra


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


def test_bad_settings_are_one_line_and_exit_code_2(tmp_path):
    """bot/pbrbot.service: RestartPreventExitStatus=2, so a settings typo is not restarted forever."""
    from click.testing import CliRunner

    from pbrbot.cli import main

    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "posts"],
                                env={"PBRBOT_HTTP_TIMEOUT": "twenty", "PBRBOT_ASK_RATE": "-"})
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: bad settings: PBRBOT_HTTP_TIMEOUT: Input should be a valid number, unable to parse string as a "
        "number (got 'twenty'); PBRBOT_ASK_RATE: Input should be a valid integer, unable to parse string as an "
        "integer (got '-') (set them in the environment or .env; see .env.example)"]
    (tmp_path / ".env").write_bytes(b"PBRBOT_POLL_MINUTES=\xff\xfe\n")
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "posts"])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
    assert result.stderr.startswith("error: bad settings: ")
