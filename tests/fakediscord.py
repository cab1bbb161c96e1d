"""A fake Discord (REST API + websocket gateway) on 127.0.0.1 for end-to-end tests with the real discord.py.

Point the bot at it with the proxy settings, then drive it from the test::

    async with FakeDiscord() as fake:
        settings = load_settings(discord_token=fake.token, discord_api_base=fake.api_base,
                                 discord_gateway_url=fake.gateway_url)
        ... start the bot, `await fake.wait_ready()` ...
        inter = await fake.slash("ask", {"question": "What is payment by results?"})
        followup = await fake.wait_for(lambda r: r.token == inter.token and r.is_followup)
        followup.json["embeds"], followup.json["allowed_mentions"], followup.json["components"]

What the client sends is recorded in `fake.requests` (REST: method, path, query, json, time, status and the
`response` JSON, e.g. the message a follow-up created: `fake.message_by_id(rec.response["id"])`) and
`fake.gateway_sent` (gateway payloads: op, d, time). Times are `time.monotonic()`, the same clock as
`Interaction.sent`, so `request.time - inter.sent` is the bot's reaction time.

REST: GET users/@me, oauth2/applications/@me, gateway, gateway/bot, channels/{id};
PUT/GET application commands (global and guild); POST interactions/{id}/{token}/callback;
follow-up webhooks (POST, GET/PATCH/DELETE messages/@original and messages/{id});
POST/PATCH/GET channels/{id}/messages[/{id}] (POST honours nonce + enforce_nonce like Discord: the same
nonce again returns the first message; GET channels/{id}/messages?limit=N is the history, without nonces);
typing; reactions; threads: POST channels/{forum}/threads (a forum post), POST channels/{id}/messages/{id}/threads
(one thread per message: a second gets 400 code 160004, as Discord), GET guilds/{id}/threads/active.
Anything else: 404, still recorded. Guild extras: `extra_channel_ids` (more text channels),
`member_permissions` ({user id: permissions}, e.g. "0" for a member without Manage Server), `forum_channel_ids`,
`roles` ({role id: name}) and `member_roles` ({user id: [role ids]}).
Gateway: HELLO, IDENTIFY -> READY + GUILD_CREATE, HEARTBEAT -> ACK, RESUME -> RESUMED (or INVALID_SESSION
when `fake.allow_resume` is False). IDENTIFY asking for the message-content intent is refused with close
code 4014 when `fake.allow_message_content` is False, as Discord does when the portal switch is off.

Driving: `slash`, `autocomplete`, `click` (a button on a recorded message), `submit_modal` (fill in and send
the modal a callback opened), `message` (MESSAGE_CREATE),
`dispatch` (any event), `drop_gateway` (close the socket: the client must reconnect and resume),
`fail` (make a REST route answer 403/404/429/500 a number of times). Responses from discord.py's side
are JSON with Content-Type exactly `application/json` (discord.py parses nothing else).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import WSMsgType, web

API_PREFIX = "/api/v10"
MESSAGE_CONTENT_INTENT = 1 << 15
ISO_NOW = "2024-01-01T00:00:00+00:00"


@dataclass
class Recorded:
    """One REST request the client made."""

    method: str
    path: str  # without the /api/v10 prefix, e.g. /webhooks/1/tok
    query: dict
    json: Any
    time: float
    status: int = 200
    response: Any = None  # the JSON the fake answered with (e.g. the created message)

    @property
    def token(self) -> str | None:
        """The interaction token for interaction callbacks and follow-up webhooks, else None."""
        m = re.match(r"^/(?:interactions/\d+|webhooks/\d+)/([^/]+)", self.path)
        return m.group(1) if m else None

    @property
    def is_callback(self) -> bool:
        return self.path.endswith("/callback")

    @property
    def is_followup(self) -> bool:
        """A message sent or edited through the interaction's webhook (follow-up or edit of @original) that
        the fake accepted (injected failures are recorded but are not follow-ups)."""
        return self.path.startswith("/webhooks/") and self.method in ("POST", "PATCH") and self.status < 300


@dataclass
class Interaction:
    """An interaction the fake dispatched; `sent` is when it went out on the gateway."""

    id: str
    token: str
    payload: dict
    sent: float


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern
    status: int
    times: int
    retry_after: float
    body: dict | None = None


@dataclass
class FakeDiscord:
    token: str = "fake-bot-token"
    app_id: int = 900000000000000001
    bot_id: int = 900000000000000001
    guild_id: int = 900000000000000100
    channel_id: int = 900000000000000200
    user_id: int = 900000000000000300
    heartbeat_interval_ms: int = 41250
    allow_message_content: bool = True
    allow_resume: bool = True
    extra_channel_ids: list[int] = field(default_factory=list)  # more text channels in the guild
    forum_channel_ids: list[int] = field(default_factory=list)  # forum channels in the guild
    member_permissions: dict[int, str] = field(default_factory=dict)  # user id -> permissions (default: all)
    roles: dict[int, str] = field(default_factory=dict)  # extra guild roles: id -> name
    member_roles: dict[int, list[int]] = field(default_factory=dict)  # user id -> role ids

    requests: list[Recorded] = field(default_factory=list)
    gateway_sent: list[dict] = field(default_factory=list)
    commands: dict[int | None, list[dict]] = field(default_factory=dict)  # None = global
    messages: dict[int, dict] = field(default_factory=dict)
    threads: dict[int, dict] = field(default_factory=dict)  # thread id -> channel payload (forum posts too)
    identifies: int = 0
    resumes: int = 0
    threads: dict[int, dict] = field(default_factory=dict)  # thread id -> channel payload (type 11)
    dm_channel_id: int = 900000000000000400
    app_permissions: str = "2147483647"  # what the bot may do where an interaction comes from

    def __post_init__(self):
        self._ids = itertools.count(1_000_000_000_000_000_000)
        self._failures: list[_Failure] = []
        self._originals: dict[str, int] = {}  # interaction token -> message id of @original
        self._ws: web.WebSocketResponse | None = None
        self._seq = 0
        self._session_id = "fake-session"
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._sent_to_client: list[dict] = []  # every gateway payload sent to the client
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> FakeDiscord:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # -- payload builders -------------------------------------------------------------------
    def snowflake(self) -> int:
        return next(self._ids)

    def user(self, user_id: int | None = None, name: str = "student", bot: bool = False) -> dict:
        return {"id": str(user_id or self.user_id), "username": name, "discriminator": "0",
                "global_name": name, "avatar": None, "bot": bot}

    @property
    def bot_user(self) -> dict:
        return {**self.user(self.bot_id, "pbrbot", bot=True), "verified": True, "flags": 0, "mfa_enabled": False}

    def channel(self, channel_id: int | None = None) -> dict:
        if channel_id in self.threads:
            return self.threads[channel_id]
        if channel_id in self.forum_channel_ids:
            return {"id": str(channel_id), "type": 15, "guild_id": str(self.guild_id), "name": "news-forum",
                    "position": 1, "permission_overwrites": [], "nsfw": False, "parent_id": None, "topic": None,
                    "last_message_id": None, "rate_limit_per_user": 0, "flags": 0, "available_tags": [],
                    "default_reaction_emoji": None, "default_sort_order": None, "default_forum_layout": 0,
                    "default_thread_rate_limit_per_user": 0, "default_auto_archive_duration": 10080}
        return {"id": str(channel_id or self.channel_id), "type": 0, "guild_id": str(self.guild_id),
                "name": "general", "position": 0, "permission_overwrites": [], "nsfw": False,
                "parent_id": None, "topic": None, "last_message_id": None, "rate_limit_per_user": 0}

    def guild(self) -> dict:
        return {
            "id": str(self.guild_id), "name": "Fake Guild", "unavailable": False, "owner_id": str(self.user_id),
            "icon": None, "splash": None, "discovery_splash": None, "afk_channel_id": None, "afk_timeout": 300,
            "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
            "roles": [{"id": str(self.guild_id), "name": "@everyone", "permissions": "2147483647",
                       "position": 0, "color": 0, "hoist": False, "managed": False, "mentionable": False}]
            + [{"id": str(rid), "name": name, "permissions": "0", "position": 1, "color": 0, "hoist": False,
                "managed": False, "mentionable": False} for rid, name in self.roles.items()],
            "emojis": [], "stickers": [], "features": [], "mfa_level": 0, "system_channel_id": None,
            "system_channel_flags": 0, "rules_channel_id": None, "joined_at": ISO_NOW, "large": False,
            "member_count": 2, "members": [self.member(self.bot_id, bot=True)], "channels": [self.channel()]
            + [self.channel(c) for c in self.extra_channel_ids + self.forum_channel_ids],
            "threads": list(self.threads.values()), "voice_states": [], "presences": [], "stage_instances": [],
            "guild_scheduled_events": [], "soundboard_sounds": [], "premium_tier": 0, "preferred_locale": "en-GB",
            "nsfw_level": 0, "premium_progress_bar_enabled": False,
        }

    def member(self, user_id: int | None = None, bot: bool = False) -> dict:
        return {"user": self.user(user_id, "pbrbot" if bot else "student", bot=bot),
                "roles": [str(r) for r in self.member_roles.get(user_id or self.user_id, [])],
                "joined_at": ISO_NOW, "deaf": False, "mute": False, "flags": 0,
                "permissions": self.member_permissions.get(user_id or self.user_id, "2147483647")}

    def message_payload(self, *, content: str = "", author: dict | None = None, channel_id: int | None = None,
                        embeds: list | None = None, components: list | None = None, **extra) -> dict:
        mid = self.snowflake()
        msg = {"id": str(mid), "channel_id": str(channel_id or self.channel_id), "guild_id": str(self.guild_id),
               "author": author or self.bot_user, "content": content, "timestamp": ISO_NOW,
               "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
               "mention_roles": [], "attachments": [], "embeds": embeds or [], "pinned": False, "type": 0,
               "components": components or [], "flags": 0, **extra}
        self.messages[mid] = msg
        return msg

    # -- driving the bot --------------------------------------------------------------------
    async def dispatch(self, event: str, data: dict) -> float:
        """Send one DISPATCH on the live gateway; returns the monotonic time it was sent."""
        for _ in range(200):  # after a drop, wait (up to 10 s) for the client to come back
            if self._ws is not None and not self._ws.closed:
                break
            await asyncio.sleep(0.05)
        self._seq += 1
        sent = time.monotonic()
        await self._ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))
        return sent

    def dm_channel(self, user_id: int | None = None) -> dict:
        return {"id": str(self.dm_channel_id), "type": 1, "last_message_id": None,
                "recipients": [self.user(user_id)]}

    def channel_payload(self, channel_id: int | None) -> dict:
        """A text channel of the guild, or a thread the bot opened."""
        return self.threads.get(int(channel_id)) if channel_id and int(channel_id) in self.threads \
            else self.channel(channel_id)

    async def _interaction(self, kind: int, data: dict, user_id: int | None, message: dict | None = None,
                           guild: bool = True, channel_id: int | None = None) -> Interaction:
        iid = self.snowflake()
        token = f"itok{iid}"
        channel = self.channel_payload(channel_id) if guild else self.dm_channel(user_id)
        payload = {
            "id": str(iid), "application_id": str(self.app_id), "type": kind, "data": data, "token": token,
            "version": 1, "channel_id": channel["id"], "channel": channel,
            "app_permissions": self.app_permissions, "locale": "en-GB", "entitlements": [],
            "attachment_size_limit": 8 * 1024 * 1024, "context": 0 if guild else 1,
        }
        if guild:
            payload.update(guild_id=str(self.guild_id), guild_locale="en-GB", member=self.member(user_id),
                           authorizing_integration_owners={"0": str(self.guild_id)})
        else:
            payload.update(user=self.user(user_id), authorizing_integration_owners={"1": str(self.app_id)})
        if message is not None:
            payload["message"] = message
        sent = await self.dispatch("INTERACTION_CREATE", payload)
        return Interaction(str(iid), token, payload, sent)

    def _command_data(self, name: str, options: dict | None, focused: str | None = None) -> dict:
        types = {bool: 5, int: 4, float: 10, str: 3}
        opts = []
        for key, value in (options or {}).items():
            opt = {"name": key, "type": types[type(value)], "value": value}
            if key == focused:
                opt["focused"] = True
            opts.append(opt)
        registered = [c for cmds in self.commands.values() for c in cmds if c["name"] == name]
        data = {"id": registered[0]["id"] if registered else str(self.snowflake()), "name": name, "type": 1,
                "options": opts}
        if registered and registered[0].get("guild_id"):
            data["guild_id"] = registered[0]["guild_id"]
        return data

    async def slash(self, name: str, options: dict | None = None, *, user_id: int | None = None,
                    guild: bool = True, channel_id: int | None = None) -> Interaction:
        """A user runs /name with options {name: value} (str, int, float, bool), in the channel (or the
        thread `channel_id`), or in a DM with the bot (guild=False)."""
        return await self._interaction(2, self._command_data(name, options), user_id, guild=guild,
                                       channel_id=channel_id)

    async def message_command(self, name: str, target: dict, *, user_id: int | None = None,
                              guild: bool = True) -> Interaction:
        """A user picks the message context-menu command `name` on the message `target` (a payload)."""
        registered = [c for cmds in self.commands.values() for c in cmds if c["name"] == name and c.get("type") == 3]
        data = {"id": registered[0]["id"] if registered else str(self.snowflake()), "name": name, "type": 3,
                "target_id": target["id"], "resolved": {"messages": {target["id"]: target}}}
        return await self._interaction(2, data, user_id, guild=guild, channel_id=int(target["channel_id"]))

    async def autocomplete(self, name: str, options: dict, focused: str, *,
                           user_id: int | None = None) -> Interaction:
        """A user types into option `focused` of /name; the bot answers with a callback of type 8."""
        return await self._interaction(4, self._command_data(name, options, focused), user_id)

    async def click(self, message: dict, custom_id: str, *, user_id: int | None = None) -> Interaction:
        """A user presses the button `custom_id` on `message` (a message payload the fake stored)."""
        return await self._interaction(3, {"custom_id": custom_id, "component_type": 2}, user_id,
                                       message=message)

    async def submit_modal(self, callback: Recorded, values: dict[str, Any], message: dict, *,
                           user_id: int | None = None) -> Interaction:
        """A user fills in the modal the bot opened (`callback`: its type-9 interaction callback) and submits
        it: `values` maps a component's custom_id to its value (a text input) or list of values (a select)."""
        modal = callback.json["data"]
        components = []
        for row in modal["components"]:
            inner = row.get("component") or (row.get("components") or [{}])[0]
            cid = inner.get("custom_id")
            value = values.get(cid)
            if inner.get("type") == 4:
                part = {"type": 4, "custom_id": cid, "value": value or ""}
            else:
                part = {"type": inner.get("type", 3), "custom_id": cid,
                        "values": value if isinstance(value, list) else [value] if value is not None else []}
            components.append({"type": 18, "id": row.get("id", 0), "component": part})
        return await self._interaction(5, {"custom_id": modal["custom_id"], "components": components}, user_id,
                                       message=message)

    async def message(self, content: str, *, mentions: list[dict] | None = None, user_id: int | None = None,
                      referenced_message: dict | None = None, channel_id: int | None = None) -> dict:
        """A user posts `content` in the channel (or the thread `channel_id`) (MESSAGE_CREATE); mention the
        bot with `mentions=[fake.bot_user]`."""
        channel_id = channel_id or self.channel_id
        extra: dict = {"member": {k: v for k, v in self.member(user_id).items() if k != "user"}}
        if referenced_message is not None:
            extra.update(referenced_message=referenced_message, type=19,
                         message_reference={"message_id": referenced_message["id"],
                                            "channel_id": str(channel_id), "guild_id": str(self.guild_id)})
        msg = self.message_payload(content=content, author=self.user(user_id), channel_id=channel_id, **extra)
        msg["mentions"] = mentions or []
        await self.dispatch("MESSAGE_CREATE", msg)
        return msg

    async def drop_gateway(self, code: int = 4000) -> None:
        """Close the live gateway connection with `code` (4000: 'unknown error', the client resumes)."""
        if self._ws is not None:
            ws, self._ws = self._ws, None
            await ws.close(code=code)

    def fail(self, method: str, path_pattern: str, status: int, *, times: int = 1, retry_after: float = 0.05,
             body: dict | None = None) -> None:
        """The next `times` requests matching METHOD and the regex `path_pattern` (path without /api/v10)
        get `status` (429 comes with retry_after and the headers discord.py needs to retry)."""
        self._failures.append(_Failure(method.upper(), re.compile(path_pattern), status, times, retry_after, body))

    # -- reading what the bot did -----------------------------------------------------------
    def find(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        """Recorded requests with this method and whose path matches the regex `path` (search)."""
        return [r for r in self.requests
                if (method is None or r.method == method) and (path is None or re.search(path, r.path))]

    def for_interaction(self, inter: Interaction) -> list[Recorded]:
        return [r for r in self.requests if r.token == inter.token]

    def message_by_id(self, message_id: int | str) -> dict:
        return self.messages[int(message_id)]

    async def wait_for(self, predicate: Callable[[Recorded], bool], timeout: float = 10.0, count: int = 1
                       ) -> Recorded | list[Recorded]:
        """Wait until `count` recorded requests satisfy `predicate`; return the first (or the list if count > 1)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.requests if predicate(r)]
            if len(found) >= count:
                return found[0] if count == 1 else found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {count} request(s); saw {len(found)}; "
                                     f"last requests: {[(r.method, r.path) for r in self.requests[-5:]]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Until a client has identified (or resumed) and been sent READY/RESUMED."""
        deadline = time.monotonic() + timeout
        while not any(p.get("t") in ("GUILD_CREATE", "RESUMED") for p in self._sent_to_client):
            if time.monotonic() > deadline:
                raise AssertionError("the client never identified on the fake gateway")
            await asyncio.sleep(0.02)

    # -- REST -------------------------------------------------------------------------------
    def _record(self, rec: Recorded) -> None:
        self.requests.append(rec)
        self._changed.set()

    @staticmethod
    def _json(data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
        return web.Response(body=json.dumps(data).encode(), status=status,
                            headers={"Content-Type": "application/json", **(headers or {})})

    async def _read_body(self, request: web.Request) -> Any:
        if request.content_type == "multipart/form-data":
            form = await request.post()
            return json.loads(form["payload_json"]) if "payload_json" in form else {}
        raw = await request.read()
        return json.loads(raw) if raw else None

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        rec = Recorded(request.method, path, dict(request.query), await self._read_body(request), time.monotonic())
        for failure in self._failures:
            if failure.times > 0 and failure.method == rec.method and failure.pattern.search(path):
                failure.times -= 1
                rec.status = failure.status
                self._record(rec)
                if failure.status == 429:
                    return self._json(failure.body or {"message": "You are being rate limited.",
                                                       "retry_after": failure.retry_after, "global": False},
                                      429, {"Retry-After": str(failure.retry_after), "Via": "1.1 fake"})
                return self._json(failure.body or {"message": f"fake failure {failure.status}", "code": 0},
                                  failure.status)
        needs_auth = not re.match(r"^/(interactions|webhooks)/", path)
        if needs_auth and request.headers.get("Authorization") != f"Bot {self.token}":
            rec.status = 401
            self._record(rec)
            return self._json({"message": "401: Unauthorized", "code": 0}, 401)
        for method, pattern, handler in self._routes:
            m = re.fullmatch(pattern, path)
            if m and method == request.method:
                status, data = handler(self, rec, *m.groups())
                rec.status, rec.response = status, data
                self._record(rec)
                return web.Response(status=204) if status == 204 else self._json(data, status)
        rec.status = 404
        self._record(rec)
        return self._json({"message": "404: Not Found (fake)", "code": 0}, 404)

    def _users_me(self, rec):
        return 200, self.bot_user

    def _app_info(self, rec):
        return 200, {"id": str(self.app_id), "name": "pbrbot", "description": "", "icon": None,
                     "bot_public": False, "bot_require_code_grant": False, "owner": self.user(),
                     "verify_key": "0" * 64, "flags": 0, "summary": "", "team": None,
                     "interactions_endpoint_url": None}

    def _gateway_info(self, rec):
        return 200, {"url": self.gateway_url, "shards": 1,
                     "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0,
                                             "max_concurrency": 1}}

    def _get_channel(self, rec, channel_id):
        return 200, self.channel_payload(int(channel_id))

    def _open_dm(self, rec):
        """POST users/@me/channels {"recipient_id"}: the bot's DM channel with that user."""
        return 200, self.dm_channel(int((rec.json or {}).get("recipient_id") or self.user_id))

    def _create_thread(self, rec, channel_id, message_id):
        """POST channels/{id}/messages/{id}/threads: a public thread whose id is the message's (as on
        Discord); the gateway is told (THREAD_CREATE). A second thread on one message: 400, code 160004."""
        mid = int(message_id)
        if mid in self.threads:
            return 400, {"message": "A thread has already been created for this message", "code": 160004}
        thread = {"id": str(mid), "type": 11, "guild_id": str(self.guild_id), "parent_id": str(channel_id),
                  "name": (rec.json or {}).get("name", "thread"), "owner_id": str(self.bot_id),
                  "last_message_id": None, "rate_limit_per_user": 0, "message_count": 0, "member_count": 1,
                  "flags": 0, "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                                  "archive_timestamp": ISO_NOW, "locked": False}}
        self.threads[mid] = thread
        asyncio.get_running_loop().create_task(self.dispatch("THREAD_CREATE", {**thread, "newly_created": True}))
        return 201, thread

    def _put_commands(self, rec, app_id, guild_id=None):
        stored = []
        for cmd in rec.json or []:
            item = {"description": "", **cmd, "id": str(self.snowflake()), "application_id": str(app_id),
                    "version": "1"}  # like Discord: a context menu comes back with an empty description
            if guild_id:
                item["guild_id"] = guild_id
            stored.append(item)
        self.commands[int(guild_id) if guild_id else None] = stored
        return 200, stored

    def _get_commands(self, rec, app_id, guild_id=None):
        return 200, self.commands.get(int(guild_id) if guild_id else None, [])

    def _callback(self, rec, interaction_id, token):
        kind = (rec.json or {}).get("type")
        data = (rec.json or {}).get("data") or {}
        result: dict = {"interaction": {"id": interaction_id, "type": kind}}
        if kind in (4, 5, 7):  # message, deferred message ("thinking"), update the clicked message
            msg = self.message_payload(content=data.get("content") or "", embeds=data.get("embeds"),
                                       components=data.get("components"), flags=data.get("flags", 0),
                                       webhook_id=str(self.app_id), application_id=str(self.app_id))
            self._originals[token] = int(msg["id"])
            result["interaction"].update(response_message_id=msg["id"], response_message_loading=kind == 5,
                                         response_message_ephemeral=bool(data.get("flags", 0) & 64))
            result["resource"] = {"type": kind, "message": msg}
        return 200, result

    def _webhook_post(self, rec, app_id, token):
        body = rec.json or {}
        msg = self.message_payload(content=body.get("content") or "", embeds=body.get("embeds"),
                                   components=body.get("components"), flags=body.get("flags", 0),
                                   webhook_id=str(app_id), application_id=str(app_id))
        return 200, msg

    def _webhook_message(self, rec, app_id, token, message_id):
        mid = self._originals.get(token) if message_id == "@original" else int(message_id)
        return self._message_op(rec, mid, ("content", "embeds", "components", "flags"))

    def _message_op(self, rec, mid: int | None, editable: tuple[str, ...]):
        """GET, PATCH (the `editable` keys) or DELETE one stored message."""
        if mid is None or mid not in self.messages:
            return 404, {"message": "Unknown Message", "code": 10008}
        if rec.method == "DELETE":
            del self.messages[mid]
            return 204, None
        if rec.method == "PATCH":
            self.messages[mid].update({k: v for k, v in (rec.json or {}).items() if k in editable})
        return 200, self.messages[mid]

    def _channel_post(self, rec, channel_id):
        body = rec.json or {}
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            # Like Discord: the same nonce from the same author (within a few minutes; here: ever)
            # returns the message created the first time instead of creating another.
            for msg in self.messages.values():
                if msg.get("nonce") == str(nonce) and msg["author"]["id"] == str(self.bot_id):
                    return 200, msg
        extra = {"nonce": str(nonce)} if nonce is not None else {}
        return 200, self.message_payload(content=body.get("content") or "", embeds=body.get("embeds"),
                                         components=body.get("components"), channel_id=int(channel_id), **extra)

    def _channel_history(self, rec, channel_id):
        """GET channels/{id}/messages?limit=N: newest first. Like Discord, history carries no nonce."""
        limit = min(int(rec.query.get("limit", 50)), 100)
        found = sorted((m for m in self.messages.values() if m["channel_id"] == channel_id),
                       key=lambda m: int(m["id"]), reverse=True)[:limit]
        return 200, [{k: v for k, v in m.items() if k != "nonce"} for m in found]

    def channel_messages(self, channel_id: int) -> list[dict]:
        """The messages the fake holds in a channel, oldest first."""
        return sorted((m for m in self.messages.values() if m["channel_id"] == str(channel_id)),
                      key=lambda m: int(m["id"]))

    def _channel_message(self, rec, channel_id, message_id):
        return self._message_op(rec, int(message_id), ("content", "embeds", "components"))

    def _thread(self, thread_id: int, parent_id: int, name: str, kind: int = 11) -> dict:
        thread = {"id": str(thread_id), "type": kind, "guild_id": str(self.guild_id), "parent_id": str(parent_id),
                  "owner_id": str(self.bot_id), "name": name, "last_message_id": None, "rate_limit_per_user": 0,
                  "message_count": 0, "member_count": 1, "flags": 0, "applied_tags": [],
                  "thread_metadata": {"archived": False, "auto_archive_duration": 10080,
                                      "archive_timestamp": ISO_NOW, "locked": False}}
        self.threads[thread_id] = thread
        return thread

    def _start_thread(self, rec, channel_id):
        """POST channels/{forum}/threads: a forum post (a thread whose first message has the thread's id)."""
        body = rec.json or {}
        if int(channel_id) not in self.forum_channel_ids:
            return 400, {"message": "fake: only forum posts are made here", "code": 0}
        first = body.get("message") or {}
        msg = self.message_payload(content=first.get("content") or "", embeds=first.get("embeds"),
                                   components=first.get("components"))
        tid = int(msg["id"])
        msg["channel_id"] = str(tid)
        msg["allowed_mentions"] = first.get("allowed_mentions")
        return 201, {**self._thread(tid, int(channel_id), body.get("name") or "", 11), "message": msg}

    def _thread_on_message(self, rec, channel_id, message_id):
        """POST channels/{id}/messages/{id}/threads: one thread per message, as Discord (160004 for a second)."""
        mid = int(message_id)
        if mid in self.threads:
            return 400, {"message": "A thread has already been created for this message", "code": 160004}
        if mid not in self.messages:
            return 404, {"message": "Unknown Message", "code": 10008}
        return 201, self._thread(mid, int(channel_id), (rec.json or {}).get("name") or "", 11)

    def _active_threads(self, rec, guild_id):
        return 200, {"threads": list(self.threads.values()), "members": []}

    def forum_posts(self, forum_id: int) -> list[dict]:
        """The first messages of the forum's posts (threads), oldest first."""
        return [self.messages[tid] for tid, t in sorted(self.threads.items())
                if t["parent_id"] == str(forum_id) and tid in self.messages]

    def threads_of(self, channel_id: int) -> list[dict]:
        """The threads started in a channel (on its messages or as forum posts), oldest first."""
        return [t for _, t in sorted(self.threads.items()) if t["parent_id"] == str(channel_id)]

    def _no_content(self, rec, *args):
        return 204, None

    _routes = [  # (method, path regex, handler(self, rec, *groups) -> (status, json))
        ("GET", r"/users/@me", _users_me),
        ("GET", r"/oauth2/applications/@me", _app_info),
        ("GET", r"/gateway(?:/bot)?", _gateway_info),
        ("GET", r"/channels/(\d+)", _get_channel),
        ("POST", r"/channels/(\d+)/messages/(\d+)/threads", _create_thread),
        ("POST", r"/users/@me/channels", _open_dm),
        ("PUT", r"/applications/(\d+)/commands", _put_commands),
        ("GET", r"/applications/(\d+)/commands", _get_commands),
        ("PUT", r"/applications/(\d+)/guilds/(\d+)/commands", _put_commands),
        ("GET", r"/applications/(\d+)/guilds/(\d+)/commands", _get_commands),
        ("POST", r"/interactions/(\d+)/([^/]+)/callback", _callback),
        ("POST", r"/webhooks/(\d+)/([^/]+)", _webhook_post),
        ("GET", r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", _webhook_message),
        ("PATCH", r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", _webhook_message),
        ("DELETE", r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", _webhook_message),
        ("POST", r"/channels/(\d+)/messages", _channel_post),
        ("GET", r"/channels/(\d+)/messages", _channel_history),
        ("GET", r"/channels/(\d+)/messages/(\d+)", _channel_message),
        ("PATCH", r"/channels/(\d+)/messages/(\d+)", _channel_message),
        ("DELETE", r"/channels/(\d+)/messages/(\d+)", _channel_message),
        ("POST", r"/channels/(\d+)/typing", _no_content),
        ("POST", r"/channels/(\d+)/threads", _start_thread),
        ("POST", r"/channels/(\d+)/messages/(\d+)/threads", _thread_on_message),
        ("GET", r"/guilds/(\d+)/threads/active", _active_threads),
        ("PUT", r"/channels/(\d+)/messages/(\d+)/reactions/([^/]+)/@me", _no_content),
    ]

    # -- gateway ----------------------------------------------------------------------------
    async def _send(self, ws: web.WebSocketResponse, payload: dict) -> None:
        self._sent_to_client.append(payload)
        await ws.send_str(json.dumps(payload))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        await self._send(ws, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            payload = json.loads(msg.data)
            op, data = payload.get("op"), payload.get("d")
            self.gateway_sent.append({"op": op, "d": data, "time": time.monotonic()})
            if op == 1:  # heartbeat
                await self._send(ws, {"op": 11})
            elif op == 2:  # identify
                await self._identify(ws, data)
            elif op == 6:  # resume
                await self._resume(ws, data)
        if self._ws is ws:
            self._ws = None
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict) -> None:
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        if data.get("intents", 0) & MESSAGE_CONTENT_INTENT and not self.allow_message_content:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        self.identifies += 1
        self._session_id = f"fake-session-{self.identifies}"
        self._ws = ws
        self._seq += 1
        await self._send(ws, {"op": 0, "t": "READY", "s": self._seq, "d": {
            "v": 10, "user": self.bot_user, "guilds": [{"id": str(self.guild_id), "unavailable": True}],
            "session_id": self._session_id, "resume_gateway_url": self.gateway_url, "shard": [0, 1],
            "application": {"id": str(self.app_id), "flags": 0}, "private_channels": [], "relationships": [],
        }})
        self._seq += 1
        await self._send(ws, {"op": 0, "t": "GUILD_CREATE", "s": self._seq, "d": self.guild()})

    async def _resume(self, ws: web.WebSocketResponse, data: dict) -> None:
        if not self.allow_resume or data.get("session_id") != self._session_id:
            await self._send(ws, {"op": 9, "d": False})
            return
        self.resumes += 1
        self._ws = ws
        self._seq += 1
        await self._send(ws, {"op": 0, "t": "RESUMED", "s": self._seq, "d": {}})
