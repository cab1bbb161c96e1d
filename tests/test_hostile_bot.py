"""Hostile input through the real discord.py bot and the fake Discord: masked links written in questions and in
post titles and bodies appear as plain text in every message the bot sends."""

from __future__ import annotations

import json
import re

import pytest
from conftest import make_services
from fakeblog import FakeBlog
from fakediscord import FakeDiscord
from test_alerts_e2e import CH_A, CH_B, alerts_in, command, first_poll_done, running_bot, settings_for, subscribe, until

pytestmark = pytest.mark.slow

EVIL = "[Claim free Discord Nitro](https://evil.example/nitro)"
LIVE_EVIL_LINK = re.compile(r"\]\(\s*<?https?://evil\.example")  # `](` touching: Discord would render it


def sent_by_bot(fake: FakeDiscord) -> list[str]:
    """Every message body the bot sent or edited (channel messages, interaction callbacks, follow-ups)."""
    return [json.dumps(r.json, ensure_ascii=False) for r in fake.requests
            if r.method in ("POST", "PATCH") and isinstance(r.json, dict)
            and re.match(r"^/(channels/\d+/messages|interactions/|webhooks/)", r.path)]


async def test_masked_links_in_questions_titles_and_bodies_never_render(tmp_path, real_embedder):
    data_dir = tmp_path / "data"
    with FakeBlog() as blog:
        blog.add_posts(2)
        async with FakeDiscord(extra_channel_ids=[CH_A, CH_B]) as fake:
            services = make_services(data_dir, **settings_for(fake, blog))
            services.__dict__["embedder"] = real_embedder
            async with running_bot(services, fake):
                await until(first_poll_done(data_dir), what="the first poll")
                await subscribe(fake, CH_A)
                post = blog.add_post(
                    f"Kestrel mentors {EVIL}",
                    f"The Kestrel scheme pairs every woman leaving HMP Styal with a peer mentor who meets her at "
                    f"the gate. {EVIL} to join the Kestrel mentors.\n\n"
                    "Reoffending among the women mentored fell by a third, the evaluation found.")
                await until(lambda: alerts_in(fake, CH_A), what="the alert")

                async def followup(name, options):
                    inter = await fake.slash(name, options)
                    return await fake.wait_for(lambda r: r.token == inter.token and r.is_followup, timeout=30)

                quoted = await followup("ask", {"question": "How do Kestrel mentors meet women leaving HMP Styal?"})
                echoed = await followup("ask", {"question": f"Who won the 1966 world cup? {EVIL}"})
                searched = await followup("search", {"query": f"Kestrel {EVIL}"})
                await followup("latest", {})
                await subscribe(fake, CH_B)  # /announce queues the post there
                announced = await command(fake, "announce", [{"name": "url", "type": 3, "value": post["link"]}])
            services.close()

    # the hostile text reached the alert, the quote, the echoed question, the search and /announce ...
    alert = json.dumps(fake.channel_messages(CH_A)[-1], ensure_ascii=False)
    for shown in (alert, json.dumps(quoted.json), json.dumps(echoed.json), json.dumps(searched.json), announced):
        assert "Claim free Discord Nitro" in shown
    assert "Claim free Discord Nitro" in json.dumps(quoted.json["embeds"][0]["description"])  # in the quote
    # ... and no message the bot sent renders it as a link, while its own links to the post still work
    messages = sent_by_bot(fake)
    assert len(messages) >= 6
    assert [m for m in messages if LIVE_EVIL_LINK.search(m)] == []
    assert fake.channel_messages(CH_A)[-1]["embeds"][0]["url"] == post["link"]
    assert f"]({post['link']}" in quoted.json["embeds"][0]["description"]
