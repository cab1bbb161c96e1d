"""The real discord.py client, running PbrBot with the real engine, against the fake Discord in fakediscord.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import statistics
import sys

import pytest
from click.testing import CliRunner

from conftest import copy_archive, make_services
from fakediscord import FakeDiscord

from pbrbot.chat.bot import PbrBot, serve
from pbrbot.cli import main
from pbrbot.models import Post
from pbrbot.sources.sample import sample_dir

pytestmark = pytest.mark.slow
NOTHING = {"parse": []}


@pytest.fixture
async def fake():
    async with FakeDiscord() as server:
        yield server


@pytest.fixture
def bot_services(sample_services, fake, tmp_path):
    """Make a bot's Services pointed at the fake (with setting overrides): by default a private copy of the
    sample archive's store over the sample's warm engine (searcher, answerer: read-only); with
    `archive=False` an empty archive with its own engine (only the model is shared)."""
    made = []

    def make(archive: bool = True, **overrides):
        data_dir = tmp_path / f"data{len(made)}"
        if archive:
            copy_archive(sample_services, data_dir)
        # the real model, loaded once per session; with the archive, the sample's searcher and answerer too
        parts = {"searcher": sample_services.searcher, "answerer": sample_services.answerer} if archive else {}
        svc = make_services(data_dir, embedder=sample_services.embedder, discord_token=fake.token,
                            discord_api_base=fake.api_base, discord_gateway_url=fake.gateway_url,
                            parts=parts, **overrides)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()


@contextlib.asynccontextmanager
async def running(services, fake, **options):
    """PbrBot started with bot.start(token) as a task in this event loop; closed cleanly afterwards."""
    bot = PbrBot(services, guild_ready_timeout=0.05, **options)
    task = asyncio.create_task(bot.start(fake.token))
    try:
        async with asyncio.timeout(20):
            while not bot.is_ready():
                if task.done():
                    task.result()  # raise what stopped it
                await asyncio.sleep(0.01)
        yield bot
    finally:
        await bot.close()
        await asyncio.wait_for(task, 10)


def followups(fake, inter):
    return [r for r in fake.for_interaction(inter) if r.is_followup]


async def answer_of(fake, inter, timeout=30.0):
    """The bot's reply to an interaction: (callback, first follow-up)."""
    callback = await fake.wait_for(lambda r: r.token == inter.token and r.is_callback, timeout)
    reply = await fake.wait_for(lambda r: r.token == inter.token and r.is_followup, timeout)
    return callback, reply


def buttons(payload) -> dict[str, dict]:
    return {b.get("label") or b["emoji"]["name"]: b for row in payload["components"] for b in row["components"]}


async def test_ask_defers_then_answers_with_quotes_links_and_buttons(fake, bot_services):
    async with running(bot_services(), fake):
        names = {c["name"] for c in fake.commands[None]}
        assert {"ask", "define", "search", "latest", "about"} <= names
        fake.fail("POST", r"^/webhooks/", 429, retry_after=0.05)  # Discord rate-limits the first follow-up
        inter = await fake.slash("ask", {"question": "What is payment by results?"})
        callback, reply = await answer_of(fake, inter)
    assert callback.json["type"] == 5  # deferred: "pbrbot is thinking…"
    assert callback.time - inter.sent < 3.0
    assert len(fake.find("POST", r"^/webhooks/")) == 2  # the 429, then the retry that went through
    embed = reply.json["embeds"][0]
    assert embed["title"] == "What is payment by results?"
    # the question asks what a term means: the glossary's own words first, then the quotes
    assert embed["description"].startswith("**Glossary, PbR:** Paying providers according to the outcomes")
    assert "\n\n> " in embed["description"]
    assert "](https://www.russellwebster.com/" in embed["description"] and "#:~:text=" in embed["description"]
    assert reply.json["allowed_mentions"] == NOTHING
    assert set(buttons(reply.json)) == {"More", "👍", "👎", "Ask a follow-up"}


async def test_dev_guild_registration_and_sync_commands_cli(fake, bot_services, tmp_path):
    services = bot_services(dev_guild_id=fake.guild_id)
    async with running(services, fake):
        assert {c["name"] for c in fake.commands[fake.guild_id]} >= {"ask", "define", "search", "latest", "about"}
        assert None not in fake.commands  # nothing registered globally
        inter = await fake.slash("about")  # the command carries the guild id, as Discord sends it
        _, reply = await answer_of(fake, inter)
    fields = {f["name"]: f["value"] for f in reply.json["embeds"][0]["fields"]}
    assert fields["Archive"].startswith("5 posts")
    assert "updated" in fields["Index"] and "all-MiniLM-L6-v2" in fields["Model"]

    env = {"PBRBOT_DISCORD_TOKEN": fake.token, "PBRBOT_DISCORD_API_BASE": fake.api_base}
    result = await asyncio.to_thread(CliRunner().invoke, main, ["--data-dir", str(tmp_path / "d"), "sync-commands"],
                                     env=env)
    assert result.exit_code == 0, result.output
    assert "commands globally" in result.output
    assert "/ask" in result.output and fake.commands[None]


async def test_define_autocomplete_search_and_latest(fake, bot_services):
    async with running(bot_services(), fake):
        auto = await fake.autocomplete("define", {"term": "pb"}, focused="term")
        choices = (await fake.wait_for(lambda r: r.token == auto.token)).json
        inter = await fake.slash("define", {"term": "PbR"})
        _, define = await answer_of(fake, inter)
        inter = await fake.slash("search", {"query": "justice reinvestment"})
        _, search = await answer_of(fake, inter)
        inter = await fake.slash("latest")
        _, latest = await answer_of(fake, inter)
    assert choices["type"] == 8 and "PbR" in [c["value"] for c in choices["data"]["choices"]]
    assert define.json["embeds"][0]["title"] in ("Define: PbR", "Not in the archive")
    listing = search.json["embeds"][0]["description"]
    assert listing.startswith("**1.** [") and "justice-reinvestment" in listing
    newest = latest.json["embeds"][0]["description"].split("\n")
    assert len([line for line in newest if line.startswith("**")]) == 5
    for reply in (define, search, latest):
        assert reply.json["allowed_mentions"] == NOTHING


async def test_define_of_an_unknown_term_suggests_known_ones_privately(fake, bot_services):
    async with running(bot_services(), fake):
        inter = await fake.slash("define", {"term": "cherry pickng"})
        _, reply = await answer_of(fake, inter)
    assert reply.json["flags"] & 64  # ephemeral
    assert "don't know the term" in reply.json["content"] and "cherry picking" in reply.json["content"].lower()
    assert reply.json["allowed_mentions"] == NOTHING


async def test_more_and_feedback_buttons(fake, bot_services):
    services = bot_services()
    async with running(services, fake):
        inter = await fake.slash("ask", {"question": "what is payment by results?"})
        _, reply = await answer_of(fake, inter)
        message = fake.message_by_id(reply.response["id"])  # the message the follow-up created
        more = await fake.click(message, buttons(reply.json)["More"]["custom_id"])
        _, more_reply = await answer_of(fake, more)
        up = await fake.click(message, buttons(reply.json)["👍"]["custom_id"], user_id=42)
        form = await fake.wait_for(lambda r: r.token == up.token and r.is_callback)  # the feedback form
        _, thanks = await answer_of(fake, await fake.submit_modal(form, {"pbr:feedback:quote": "all"}, message,
                                                                  user_id=42))
    assert "quotes 4–" in more_reply.json["embeds"][0]["footer"]["text"]
    assert more_reply.json["embeds"][0]["description"] != reply.json["embeds"][0]["description"]
    assert thanks.json["flags"] & 64 and "feedback" in thanks.json["content"]

    # after a restart the same buttons still work (the state is in the custom_id and the embed)
    async with running(services, fake):
        down = await fake.click(message, buttons(reply.json)["👎"]["custom_id"])
        form = await fake.wait_for(lambda r: r.token == down.token and r.is_callback)
        await answer_of(fake, await fake.submit_modal(form, {"pbr:feedback:quote": "0",
                                                             "pbr:feedback:reason": "not_an_answer"}, message))

    result = CliRunner().invoke(main, ["--data-dir", str(services.settings.data_dir), "feedback", "--json"])
    votes = json.loads(result.output)
    assert [v["vote"] for v in votes] == [-1, 1]
    assert votes[1]["question"] == "what is payment by results?" and votes[1]["user_id"] == 42
    assert votes[1]["passage_ids"] and votes[1]["quotes"][0]["link"].startswith("https://www.russellwebster.com/")
    text = CliRunner().invoke(main, ["--data-dir", str(services.settings.data_dir), "feedback"]).output
    assert "2 votes: 1 up, 1 down" in text


async def test_cooldown_is_per_user_and_friendly(fake, bot_services):
    async with running(bot_services(ask_rate=2, ask_per=60), fake):
        asks = [await fake.slash("latest")]  # not rate-limited: no engine search
        for _ in range(3):
            asks.append(await fake.slash("ask", {"question": "what is justice reinvestment?"}))
        other = await fake.slash("ask", {"question": "what is justice reinvestment?"}, user_id=7)
        limited = await fake.wait_for(lambda r: r.token == asks[3].token and r.is_callback)
        await answer_of(fake, other)
    assert limited.json["type"] == 4 and limited.json["data"]["flags"] & 64
    assert "faster than I can keep up" in limited.json["data"]["content"]
    assert not followups(fake, asks[3])


async def test_mentions_and_replies_are_answered(fake, bot_services):
    async with running(bot_services(), fake) as bot:
        await fake.message("nothing for the bot here")
        await fake.message(f"<@{fake.bot_id}> which areas took part in the justice reinvestment pilots?",
                           mentions=[fake.bot_user])
        first = await fake.wait_for(lambda r: r.method == "POST" and r.path.endswith("/messages"), 30)
        answer = fake.message_by_id(first.response["id"])
        await fake.message("and what is payment by results?", referenced_message=answer)
        second = await fake.wait_for(lambda r: r.method == "POST" and r.path.endswith("/messages"), 30, count=2)
        assert bot.intents.message_content
    assert len(second) == 2  # the plain message was ignored
    for sent in second:
        assert sent.json["allowed_mentions"] == {"parse": [], "replied_user": False}
        assert sent.json["message_reference"]["message_id"]
        assert "> " in sent.json["embeds"][0]["description"]  # quotes (the second under PbR's gloss)
    assert second[0].json["embeds"][0]["description"].startswith("> ")
    assert second[1].json["embeds"][0]["description"].startswith("**Glossary, PbR:**")
    assert first.json["embeds"][0]["title"] == "which areas took part in the justice reinvestment pilots?"


async def test_quote_with_everyone_pings_nobody(fake, bot_services):

    services = bot_services(archive=False)
    services.store.upsert_post(Post(
        url="https://www.russellwebster.com/hostel-closures/", title="@everyone: approved premises closures",
        date="2024-02-01", text="@everyone please note: the approved premises closure programme starts in "
        "March, says <@&123456789> and <@!987654321>. Approved premises closures affect hostel places "
        "for people leaving prison. @here is the timetable for the approved premises closure programme."))
    services.run_index(progress=False)
    async with running(services, fake):
        inter = await fake.slash("ask", {"question": "When does the approved premises closure programme start?"})
        _, reply = await answer_of(fake, inter)
    assert reply.json["allowed_mentions"] == NOTHING
    text = json.dumps(reply.json["embeds"], ensure_ascii=False)
    assert "approved premises closure" in text
    for ping in ("@everyone", "@here", "<@&", "<@!"):
        assert ping not in text


async def test_errors_are_ephemeral_and_logged(fake, bot_services, caplog, monkeypatch):
    services = bot_services()

    def broken(*args, **kwargs):
        raise RuntimeError("index exploded")

    monkeypatch.setattr(services.answerer, "prepare", broken)  # under every question
    async with running(services, fake):
        inter = await fake.slash("ask", {"question": "what is payment by results?"})
        await fake.wait_for(lambda r: r.token == inter.token and r.method == "DELETE")
        _, note = await answer_of(fake, inter)
    assert note.json["flags"] & 64 and note.json["content"].startswith("Sorry, something went wrong")
    assert "Traceback" not in json.dumps([r.json for r in fake.requests])
    assert any(r.exc_info and "index exploded" in str(r.exc_info[1]) for r in caplog.records)


async def test_reconnects_and_resumes_after_the_gateway_drops(fake, bot_services):
    async with running(bot_services(), fake):
        await fake.drop_gateway()
        inter = await fake.slash("ask", {"question": "how do CRCs get paid?"})  # waits for the client to return
        _, reply = await answer_of(fake, inter)
    assert fake.resumes == 1 and fake.identifies == 1
    assert reply.json["embeds"]


async def test_without_message_content_intent_it_serves_slash_commands(fake, bot_services, caplog):
    fake.allow_message_content = False
    caplog.set_level(logging.WARNING, "pbrbot")
    task = asyncio.create_task(serve(bot_services()))
    try:
        await fake.wait_ready()
        inter = await fake.slash("latest")
        await answer_of(fake, inter)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    identify = [p["d"] for p in fake.gateway_sent if p["op"] == 2]
    assert not identify[-1]["intents"] & (1 << 15)
    assert "message-content intent is not enabled" in caplog.text


async def test_token_missing_or_rejected_is_one_line_and_exit_2(fake, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["--data-dir", str(tmp_path / "d"), "run"])
    assert result.exit_code == 2 and "PBRBOT_DISCORD_TOKEN" in result.output
    env = {"PBRBOT_DISCORD_TOKEN": "wrong", "PBRBOT_DISCORD_API_BASE": fake.api_base}
    result = await asyncio.to_thread(runner.invoke, main, ["--data-dir", str(tmp_path / "d"), "run"], env=env)
    assert result.exit_code == 2, result.output
    assert "rejected" in result.output and "PBRBOT_DISCORD_TOKEN" in result.output
    assert "wrong" not in result.output and "Traceback" not in result.output


async def test_fifty_concurrent_asks_are_all_deferred_within_3s_and_answered(fake, bot_services):
    questions = [json.loads(line)["question"]
                 for line in (sample_dir() / "seed-questions.jsonl").read_text().splitlines() if line.strip()]
    fake.heartbeat_interval_ms = 500
    async with running(bot_services(), fake):
        inters = await asyncio.gather(*(fake.slash("ask", {"question": questions[i % len(questions)]},
                                                   user_id=1000 + i) for i in range(50)))
        replies = await asyncio.gather(*(answer_of(fake, inter, timeout=120) for inter in inters))
    beats = [p["time"] for p in fake.gateway_sent if p["op"] == 1 and p["time"] >= inters[0].sent]
    deferral = sorted(cb.time - i.sent for i, (cb, _) in zip(inters, replies))
    answered = sorted(r.time - i.sent for i, (_, r) in zip(inters, replies))
    span = answered[-1]
    print(f"\n50 concurrent /ask: deferral p50 {statistics.median(deferral):.3f}s "
          f"p95 {deferral[int(0.95 * 49)]:.3f}s max {deferral[-1]:.3f}s; answer p50 {statistics.median(answered):.2f}s "
          f"p95 {answered[int(0.95 * 49)]:.2f}s max {span:.2f}s; {len(beats)} heartbeats meanwhile")
    assert all(cb.json["type"] == 5 for cb, _ in replies)
    assert deferral[-1] < 3.0
    assert all(r.json["embeds"] for _, r in replies)
    gaps = [b - a for a, b in zip([inters[0].sent, *beats], [*beats, inters[0].sent + span])]
    assert max(gaps) < 5.0  # the 0.5 s heartbeat kept going while the engine worked (never blocked)


async def test_pbrbot_run_process_serves_and_stops_cleanly_on_sigterm(fake, tmp_path):
    """The real `pbrbot run` process (hashing embedder: no model load): empty archive -> sample, then serve."""
    env = {**os.environ, "PBRBOT_DISCORD_TOKEN": fake.token, "PBRBOT_DISCORD_API_BASE": fake.api_base,
           "PBRBOT_DISCORD_GATEWAY_URL": fake.gateway_url, "PBRBOT_MODEL": "fake:64",
           "PBRBOT_DATA_DIR": str(tmp_path / "data")}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "pbrbot", "run", env=env, cwd=tmp_path,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await fake.wait_ready(timeout=60)
        inter = await fake.slash("latest")
        _, reply = await answer_of(fake, inter)
        assert reply.json["embeds"][0]["description"].startswith("**1.** [")
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = (out + err).decode()
    assert proc.returncode == 0, log
    assert "sample archive" in log and "stopped" in log and fake.token not in log
