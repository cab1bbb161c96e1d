# ruff: noqa: F811 - the fixtures come from test_bot_e2e
"""Issue 15 end to end: the real discord.py client running PbrBot with the real engine against the fake
Discord: follow-up threads (kept over a restart, one thread never sees another), message context menus,
user installs and DMs."""

from __future__ import annotations

import pytest

from test_bot_e2e import NOTHING, answer_of, bot_services, buttons, fake, running  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow
USER_COMMANDS = {"ask", "define", "search", "latest", "about", "Ask the archive", "Define terms here"}


def bot_posts(fake, channel_id):
    """What the bot posted in a channel or thread (REST), oldest first."""
    return [r for r in fake.find("POST", rf"^/channels/{channel_id}/messages$")]


async def reply_in(fake, channel_id, count):
    return await fake.wait_for(lambda r: r.method == "POST" and r.path == f"/channels/{channel_id}/messages",
                               30, count=count)


def description(sent) -> str:
    return sent.json["embeds"][0]["description"]


async def open_thread(fake, question):
    """/ask in the channel, then "Ask a follow-up": the thread opened on the answer."""
    inter = await fake.slash("ask", {"question": question})
    _, reply = await answer_of(fake, inter)
    assert "Ask a follow-up" in buttons(reply.json)
    answer = fake.message_by_id(reply.response["id"])
    click = await fake.click(answer, buttons(reply.json)["Ask a follow-up"]["custom_id"])
    _, note = await answer_of(fake, click)
    assert note.json["flags"] & 64 and "thread" in note.json["content"]
    thread_id = int(answer["id"])
    hint = (await reply_in(fake, thread_id, 1))
    assert hint.json["allowed_mentions"]["parse"] == [] and "follow-up" in hint.json["content"]
    return thread_id, fake.message_by_id(hint.response["id"])


async def test_a_four_turn_thread_survives_a_restart_and_threads_stay_apart(fake, bot_services):
    services = bot_services()
    async with running(services, fake):
        thread, hint = await open_thread(fake, "What does binary mean?")
        assert int(thread) in fake.threads
        await fake.message("and what about frequency?", referenced_message=hint, channel_id=thread)
        second = await reply_in(fake, thread, 2)
        other, _ = await open_thread(fake, "What is the Work Programme?")
    first_answer = second[1]
    assert "*Taken as: What does frequency mean?*" in description(first_answer)
    assert first_answer.json["allowed_mentions"] == {"parse": [], "replied_user": False}

    async with running(services, fake):  # a restart: the turns are in SQLite
        answer = fake.message_by_id(first_answer.response["id"])
        await fake.message("who argued about it?", referenced_message=answer, channel_id=thread)
        third = (await reply_in(fake, thread, 3))[2]
        inter = await fake.slash("ask", {"question": "what about justice reinvestment?"}, channel_id=thread)
        _, fourth = await answer_of(fake, inter)
        await fake.message(f"<@{fake.bot_id}> why did it save money?", mentions=[fake.bot_user], channel_id=other)
        elsewhere = (await reply_in(fake, other, 2))[1]
    assert "*Taken as: Who argued about frequency?*" in description(third)
    assert "*Taken as: Who argued about justice reinvestment?*" in description(fourth)
    assert fourth.json["allowed_mentions"] == NOTHING
    taken = description(elsewhere).split("\n")[0]
    assert "Work Programme" in taken and "frequency" not in taken and "binary" not in taken
    from pbrbot.turns import Turns

    kept = Turns(services.store)
    assert [t.question for t in kept.recent(f"thread:{thread}")] == [
        "What does binary mean?", "and what about frequency?", "who argued about it?",
        "what about justice reinvestment?"]
    assert [t.question for t in kept.recent(f"thread:{other}")] == ["What is the Work Programme?",
                                                                    "why did it save money?"]


async def test_context_menus_and_user_installs_are_registered(fake, bot_services):
    async with running(bot_services(), fake):
        registered = {c["name"]: c for c in fake.commands[None]}
    assert registered["Ask the archive"]["type"] == 3 and registered["Define terms here"]["type"] == 3
    for name in USER_COMMANDS:
        assert sorted(registered[name]["integration_types"]) == [0, 1], name
        assert sorted(registered[name]["contexts"]) == [0, 1, 2], name
    for name in ("alerts", "announce"):
        assert registered[name]["integration_types"] == [0] and registered[name]["contexts"] == [0], name


async def test_ask_the_archive_and_define_terms_here_on_a_users_message(fake, bot_services):
    async with running(bot_services(), fake):
        asked = await fake.message("What is payment by results?", user_id=77)
        inter = await fake.message_command("Ask the archive", asked)
        callback, answer = await answer_of(fake, inter)
        jargon = await fake.message("Is a SIB just PbR with cherry picking built in?", user_id=77)
        inter = await fake.message_command("Define terms here", jargon)
        define_callback, terms = await answer_of(fake, inter)
    assert callback.json["type"] == 5 and not callback.json.get("data", {}).get("flags", 0) & 64  # public
    assert answer.json["embeds"][0]["title"] == "What is payment by results?"
    assert answer.json["allowed_mentions"] == NOTHING
    assert define_callback.json["data"]["flags"] & 64 and terms.json["flags"] & 64  # private
    fields = {f["name"]: f["value"] for f in terms.json["embeds"][0]["fields"]}
    assert set(fields) == {"PbR", "SIB", "cherry picking"}
    assert all(value for value in fields.values())
    assert terms.json["allowed_mentions"] == NOTHING


async def test_a_command_from_a_dm_is_answered_and_private_where_the_bot_cannot_post(fake, bot_services):
    async with running(bot_services(), fake):
        inter = await fake.slash("ask", {"question": "What is justice reinvestment?"}, guild=False)
        _, reply = await answer_of(fake, inter)
        follow = await fake.slash("ask", {"question": "and what about binary?"}, guild=False)
        _, second = await answer_of(fake, follow)
        fake.app_permissions = str(1 << 10)  # may view the channel, not post in it
        blocked = await fake.slash("ask", {"question": "What is justice reinvestment?"})
        deferred, private = await answer_of(fake, blocked)
    assert deferred.json["data"]["flags"] & 64 and private.json["flags"] & 64
    assert "Ask a follow-up" not in buttons(private.json)  # no thread can be opened on a private answer
    assert reply.json["embeds"][0]["title"] == "What is justice reinvestment?"
    assert reply.json["allowed_mentions"] == NOTHING
    assert "*Taken as:" in description(second)


async def test_a_mention_where_the_bot_may_not_post_is_answered_in_a_dm(fake, bot_services):
    async with running(bot_services(), fake):
        fake.fail("POST", rf"^/channels/{fake.channel_id}/(messages|typing)$", 403, times=5,
                  body={"message": "Missing Permissions", "code": 50013})
        await fake.message(f"<@{fake.bot_id}> what is justice reinvestment?", mentions=[fake.bot_user])
        sent = await reply_in(fake, fake.dm_channel_id, 1)
    assert sent.json["embeds"][0]["title"] == "what is justice reinvestment?"
    assert sent.json["allowed_mentions"]["parse"] == []
    assert "Ask a follow-up" not in buttons(sent.json)


async def test_outside_a_thread_a_reply_to_an_answer_is_read_with_it(fake, bot_services):
    async with running(bot_services(), fake):
        inter = await fake.slash("ask", {"question": "What does binary mean?"})
        _, reply = await answer_of(fake, inter)
        answer = fake.message_by_id(reply.response["id"])
        await fake.message("and what about frequency?", referenced_message=answer)
        sent = await reply_in(fake, fake.channel_id, 1)
    assert "*Taken as: What does frequency mean?*" in description(sent)
