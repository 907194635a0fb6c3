"""A choice posted in the holds queue from a page left open after the study was resolved (another
tab, another machine), over real HTTP in-process: recorded refused in the audit log as before,
then redirected (post, redirect, get) to the study's page, which says what became of it, and
once, to the person who posted, that their click changed nothing. A reload sends nothing
again; the page is not cached. An address that never was a held study says so (404)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from console_harness import NURSE, T0, Console, running_console
from held_studies import held_study
from test_console_app import browser_like, get, post, signed_in

from receiving_site import errors, hold_record, holds_queue, state
from receiving_site.console import hold_resolved
from transfer_codes.tokens import new_transfer_id

pytestmark = pytest.mark.asyncio

OTHER = "registrar.lee"
RESOLVED = (
    f"{OTHER} stored it in the PACS as it was on 2027-01-15 08:00 UTC, in the holds queue. "
    "3 images went to the PACS."
)
CLICKED = "Your click on Discard changed nothing: this study is no longer held here."
NOTHING = "Nothing was changed: this study is no longer held here."
DISCARD = {"choice": "hold-discard", "confirmed": "yes"}


def _ready(tmp_path: Path) -> tuple[str, ...]:
    credential = tmp_path / "credential"
    credential.write_text("site-credential\n", encoding="utf-8")
    return (f"relay.credential_file={credential}", "pacs.host=127.0.0.1", "pacs.port=9")


def _refusals(console: Console) -> list[tuple[str, str, str, dict[str, Any]]]:
    records = [json.loads(line) for line in console.audit.read_text("utf-8").splitlines()]
    return [
        (r["action"], r["who"], r["outcome"], r["detail"])
        for r in records
        if r["action"].startswith("hold-")
    ]


def _said(page: str, element: str) -> str:
    start = page.index(f'id="{element}">') + len(f'id="{element}">')
    return page[start : page.index("</p>", start)]


async def test_a_choice_posted_after_the_study_was_resolved_redirects_to_what_became_of_it(
    tmp_path: Path,
) -> None:
    tid = new_transfer_id()
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path)) as console,
        browser_like() as client,
    ):
        resolved = hold_record.Resolved(tid, "hold-store-anyway", OTHER, T0, 3)
        hold_record.save_resolved(tmp_path / "state", resolved)
        token = await signed_in(client, console)
        page = f"{console.url}/holds/{tid}"
        posted = await post(client, page, {"csrf_token": token, **DISCARD})
        async with client.get(page, allow_redirects=False) as r:
            first = (r.status, r.headers.get("Cache-Control", ""), await r.text())
        again = await get(client, page)  # a reload: the same page, the notice said once
        searched = await post(client, f"{page}/worklist", {"csrf_token": token})
        after_search = await get(client, page)

    assert posted[:2] == (303, f"/holds/{tid}")
    status, caching, shown = first
    assert (status, "no-store" in caching) == (200, True)
    assert "<h1>Already dealt with</h1>" in shown
    assert _said(shown, "what-happened") == RESOLVED
    assert _said(shown, "unchanged") == CLICKED
    assert again[0] == 200
    assert _said(again[2], "what-happened") == RESOLVED
    assert _said(again[2], "unchanged") == NOTHING
    assert searched[:2] == (303, f"/holds/{tid}")
    assert _said(after_search[2], "unchanged") == NOTHING
    assert _refusals(console) == [
        ("hold-discard", NURSE, "refused", {"transfer_id": tid, "why": "no longer held"})
    ]


async def test_a_choice_that_finds_the_study_resolved_meanwhile_redirects_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held when the page was posted, resolved before the decision's turn (by a run that kept
    no record of who): the decision's own failure is its record (`holds_queue.decide`), and
    the page it is redirected to says someone else resolved it first."""
    tid = new_transfer_id()
    state_dir = tmp_path / "state"

    async def resolved_first(*_: object, **__: object) -> None:
        state.forget_key(state_dir, tid)  # the hold goes with the key
        raise errors.HoldNotFound()

    monkeypatch.setattr(holds_queue, "decide", resolved_first)
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path)) as console,
        browser_like() as client,
    ):
        key = state.SavedKey(tid, "https://relay.test", b"k" * 32, "St. Mary's ED", False)
        state.save_key(state_dir, key)  # a study is held while its key is kept
        hold_record.save(state_dir, held_study(tid))
        token = await signed_in(client, console)
        page = f"{console.url}/holds/{tid}"
        posted = await post(client, page, {"csrf_token": token, **DISCARD})
        status, _, shown = await get(client, page)

    assert posted[:2] == (303, f"/holds/{tid}")
    assert (status, "<h1>Already dealt with</h1>" in shown) == (200, True)
    assert _said(shown, "what-happened") == hold_resolved.SOMEONE
    assert _said(shown, "unchanged") == CLICKED
    assert _refusals(console) == []  # recorded by the decision itself, not twice


async def test_a_choice_posted_to_an_address_never_held_here_says_so(tmp_path: Path) -> None:
    never = new_transfer_id()
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path)) as console,
        browser_like() as client,
    ):
        token = await signed_in(client, console)
        status, location, shown = await post(
            client, f"{console.url}/holds/{never}", {"csrf_token": token, **DISCARD}
        )

    assert (status, location) == (404, "")
    assert "<h1>No such held study</h1>" in shown
    assert _refusals(console) == []


async def test_a_decision_done_is_said_once_and_a_reload_posts_nothing_again(
    tmp_path: Path,
) -> None:
    """Discard, done: the answer redirects (post, redirect, get) to a page saying what was
    done, once; reloaded, it leads to the study's own page, which says it was dealt with. The
    decision is recorded once, and the reload records no refusal of the same person. (It used
    to answer the POST with the outcome page, so a reload posted the choice again.)"""
    tid = new_transfer_id()
    state_dir = tmp_path / "state"
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path)) as console,
        browser_like() as client,
    ):
        key = state.SavedKey(tid, "https://relay.test", b"k" * 32, "St. Mary's ED", False)
        state.save_key(state_dir, key)  # a study is held while its key is kept
        hold_record.save(state_dir, held_study(tid))
        token = await signed_in(client, console)
        page = f"{console.url}/holds/{tid}"
        posted = await post(client, page, {"csrf_token": token, **DISCARD})
        done = await get(client, f"{page}/done")
        reloaded = await get(client, f"{page}/done")
        gone = await get(client, page)

    assert posted[:2] == (303, f"/holds/{tid}/done")
    assert (done[0], "<h1>Discarded: DOE, JANE</h1>" in done[2]) == (200, True)
    assert reloaded[:2] == (303, f"/holds/{tid}")
    assert "<h1>Already dealt with</h1>" in gone[2]
    assert [(action, outcome) for action, _, outcome, _ in _refusals(console)] == [
        ("hold-discard", "success")
    ]
