"""The Discord process: PbrBot (commands.Bot) wired with the engine's Services; run_bot for `pbrbot run`."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import re
import signal
from collections.abc import Iterator

import aiohttp
import discord
import yarl
from discord.ext import commands

from pbrbot.config import Settings
from pbrbot.errors import ConfigError, PbrbotError
from pbrbot.services import Services

log = logging.getLogger("pbrbot.bot")

DISCORD_API_BASE = "https://discord.com/api/v10"
DISCORD_GATEWAY = yarl.URL("wss://gateway.discord.gg/")
EXTENSIONS = ("pbrbot.chat.cogs.ask", "pbrbot.chat.cogs.conversations", "pbrbot.chat.cogs.alerts",
              "pbrbot.chat.cogs.moderate")
# The bot never joins voice: discord.py's warnings that voice libraries (PyNaCl, davey) are missing are noise.
discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
PLACEHOLDER_TOKENS = {"your-bot-token-here"}  # .env.example's
TOKEN_HELP = ("set PBRBOT_DISCORD_TOKEN (environment or .env) to the bot token from the Discord developer "
              "portal (Bot -> Reset Token); see bot/README.md")


# discord.py debug lines are cut to this many characters (a gateway event is its whole payload)
LOG_LINE = 400


class RedactSecrets(logging.Filter):
    """On the log handlers while the bot runs (`-v` turns on discord.py's debug logs): the bot token and the
    interaction tokens (in callback and webhook URLs and in "token" fields: each is a credential for 15
    minutes) become <redacted>, and discord.py's debug lines are cut to LOG_LINE characters."""

    URL_TOKEN = re.compile(r"(/(?:interactions|webhooks)/\d+/)[^/\s'\"?]+")
    FIELD_TOKEN = re.compile(r"""(['"]token['"]\s*:\s*['"])[^'"]+""")

    def __init__(self, secrets: list[str | None]):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = self.URL_TOKEN.sub(r"\1<redacted>", self.FIELD_TOKEN.sub(r"\1<redacted>", text))
        for secret in self.secrets:
            clean = clean.replace(secret, "<redacted>")
        if record.name.startswith("discord.") and record.levelno < logging.INFO and len(clean) > LOG_LINE:
            clean = f"{clean[:LOG_LINE]}… ({len(clean)} characters)"
        if clean != text:
            record.msg, record.args = clean, None
        return True


def protect_logs(settings: Settings) -> None:
    """Put RedactSecrets on every handler of the root logger (once)."""
    token = settings.discord_token.get_secret_value().strip() if settings.discord_token else None
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets([token]))


def configure_endpoints(settings: Settings) -> None:
    """Point discord.py at Discord, or at the REST/gateway proxy named in the settings (process-wide)."""
    discord.http.Route.BASE = (settings.discord_api_base or DISCORD_API_BASE).rstrip("/")
    gateway = settings.discord_gateway_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway) if gateway else DISCORD_GATEWAY


def make_intents(message_content: bool = True) -> discord.Intents:
    intents = discord.Intents.default()
    intents.message_content = message_content
    return intents


class PbrBot(commands.Bot):
    """The bot. Services (settings, store, index, model) are built once by the caller and passed in."""

    def __init__(self, services: Services, *, message_content: bool = True, sync_commands: bool = True,
                 **options):
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=make_intents(message_content),
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            **options,  # e.g. guild_ready_timeout
        )
        self.services = services
        self.settings = services.settings
        self.message_content = message_content
        self.sync_on_start = sync_commands
        self.synced: list[discord.app_commands.AppCommand] = []
        configure_endpoints(self.settings)

    async def setup_hook(self) -> None:
        for name in EXTENSIONS:
            if importlib.util.find_spec(name) is not None:
                await self.load_extension(name)
        if self.settings.discord_api_base and not self.settings.discord_gateway_url:
            # Behind a REST proxy without an explicit gateway: ask the proxy where the gateway is.
            _, url, _ = await self.http.get_bot_gateway()
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        if self.sync_on_start:
            await self.sync_commands()

    async def sync_commands(self) -> list[discord.app_commands.AppCommand]:
        """Register the slash commands: in PBRBOT_DEV_GUILD_ID when set (instant), else globally."""
        guild_id = self.settings.dev_guild_id
        if guild_id:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            self.synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to guild %s", len(self.synced), guild_id)
        else:
            self.synced = await self.tree.sync()
            log.info("synced %d commands globally (may take up to an hour to appear)", len(self.synced))
        return self.synced

    async def on_message(self, message: discord.Message) -> None:
        """No prefix commands: mentions and replies are handled by the Ask cog's listener."""

    async def on_ready(self) -> None:
        log.info("connected as %s (id %s) in %d guild(s)", self.user, self.user.id if self.user else "?",
                 len(self.guilds))
        if not self.message_content:
            log.warning("message-content intent is off: serving slash commands (and direct mentions) only")


def _token(settings: Settings) -> str:
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        raise ConfigError(f"no Discord token: {TOKEN_HELP}")
    token = settings.discord_token.get_secret_value().strip()
    if token in PLACEHOLDER_TOKENS:
        raise ConfigError(f"PBRBOT_DISCORD_TOKEN is still the placeholder from .env.example: {TOKEN_HELP}")
    return token


@contextlib.contextmanager
def _reaching_discord(settings: Settings) -> Iterator[None]:
    """A Discord that cannot be reached (no network, DNS, a proxy down) is one line: PbrbotError, exit 1
    (a service manager restarts it later)."""
    try:
        yield
    except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
        where = yarl.URL(settings.discord_api_base or DISCORD_API_BASE).host
        reason = getattr(exc, "os_error", None) or exc
        raise PbrbotError(f"cannot reach Discord ({where}: {str(reason) or type(exc).__name__}): check the "
                          "network connection (or PBRBOT_DISCORD_API_BASE), then run it again") from None


async def serve(services: Services, before_connect=None) -> None:
    """Log in (a rejected token fails here, quickly), run `before_connect` in a thread once, then stay
    connected until closed. Without the message-content intent enabled in the developer portal, connect
    again without it (slash commands and mentions still work)."""
    token = _token(services.settings)
    settings = services.settings
    protect_logs(services.settings)
    for message_content in (True, False):
        bot = PbrBot(services, message_content=message_content)
        try:
            async with bot:
                with _reaching_discord(settings):
                    await bot.login(token)
                if before_connect is not None:
                    await asyncio.to_thread(before_connect)
                    before_connect = None
                with _reaching_discord(settings):
                    await bot.connect()
            return
        except discord.LoginFailure:
            raise ConfigError(f"Discord rejected the token: {TOKEN_HELP}") from None
        except discord.PrivilegedIntentsRequired:
            log.warning("the message-content intent is not enabled for this application in the developer "
                        "portal (Bot -> Privileged Gateway Intents); continuing without it")


async def sync_only(services: Services) -> list[discord.app_commands.AppCommand]:
    """Log in over REST, register the slash commands, and leave (no gateway connection)."""
    token = _token(services.settings)
    protect_logs(services.settings)
    bot = PbrBot(services)
    try:
        async with bot:
            with _reaching_discord(services.settings):
                await bot.login(token)  # setup_hook loads the cogs and syncs
            return bot.synced
    except discord.LoginFailure:
        raise ConfigError(f"Discord rejected the token: {TOKEN_HELP}") from None


def prepare(services: Services, echo=print) -> None:
    """Before connecting: make sure there is an index, and load the model so the first question is quick."""
    services.ensure_index(echo=echo)
    echo(f"loading the model ({services.settings.model})…")
    services.answerer.ask("warm up", n=1)
    echo("connecting to Discord…")


def run_bot(services: Services, echo=print) -> None:
    """`pbrbot run`: blocks until stopped. A missing or rejected token raises ConfigError (exit code 2)."""
    _token(services.settings)

    async def main() -> None:
        # systemd stops us with SIGTERM: close cleanly (not possible outside the main thread: skip)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            task = asyncio.current_task()
            assert task is not None
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await serve(services, before_connect=lambda: prepare(services, echo))

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    echo("stopped")
