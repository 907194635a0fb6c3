"""Images the inbox refuses because they name another patient under a study it holds are said
where the nurse looks, over real HTTP (in-process console and relay, the inbox's keeper in
this process, as a C-STORE reaches it): the recent studies list and the study's page say how
many, that they are not sent and what to do, never whom they named; a send must acknowledge
them as it does every warning."""

from __future__ import annotations

import asyncio
import json
import re
from html import unescape
from pathlib import Path

import pytest
from er_pages import er_console
from inbox_harness import kept_inbox
from relay_harness import RECEIVER, running_relay
from test_console_app import get, post

from sending_site.inbox.keeping import Keeper
from sending_site.synthetic import make_ct_study
from site_agent.credential import CREDENTIAL_ENV

pytestmark = pytest.mark.asyncio


async def _received(keeper: Keeper, files: list[Path], source: str) -> list[int]:
    """The C-STORE statuses the inbox answers `source` for `files`."""
    statuses = []
    for path in files:
        status, _ = await asyncio.to_thread(keeper.keep_file, path.read_bytes(), source)
        statuses.append(status)
    return statuses


def _warnings_field(page: str) -> str:
    """The warnings the page's send form says it showed."""
    found = re.search(r'name="warnings" value="([^"]*)"', page)
    assert found, page
    return unescape(found.group(1))


def _row_of(home: str, patient: str) -> str:
    """The recent studies list's row of `patient` (as the console writes the name)."""
    rows = re.findall(r"<tr>.*?</tr>", home, re.DOTALL)
    (row,) = [r for r in rows if patient in r]
    return unescape(row)


async def test_an_image_naming_another_patient_is_said_on_the_list_and_the_study_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Series 2 (three images of DOE^JOHN) arrives, and the nurse opens its page; then an
    image of the same study naming ROE^RICHARD comes from the scanner: the inbox refuses it
    (one study carries one patient) and keeps nothing of it. The list shows DOE's study with
    an image of another patient refused; its page says so, that it is not sent and what to
    do; a send from the page opened before the refusal is told there is a new warning, and
    one that acknowledges it records it in the audit log."""
    doe = make_ct_study(tmp_path / "doe", 3, seed=5150, patient_name="DOE^JOHN", series_number=2)
    (roe,) = make_ct_study(
        tmp_path / "roe", 1, seed=5150, patient_name="ROE^RICHARD", series_number=1
    )
    spool = tmp_path / "spool"
    async with kept_inbox(spool) as (kept, _, keeper):
        assert await _received(keeper, doe, "PACS") == [0, 0, 0]
        async with running_relay(tmp_path / "relay") as relay:
            monkeypatch.setenv(CREDENTIAL_ENV, relay.sender_credential)
            settings = (f"spool.folder={spool}", f"relay.url={relay.url}")
            async with er_console(tmp_path, *settings) as er:
                console, client, token = er.console, er.client, er.token
                study, home = await er.the_study()
                assert "another patient" not in home
                _, _, before = await get(client, console.url + study)
                assert "another patient" not in before
                seen_before = _warnings_field(before)

                (refused,) = await _received(keeper, [roe], "CT_ROOM_2")
                assert refused != 0
                assert len(kept.kept_ids()) == 3  # nothing of ROE's image is kept

                _, _, home = await get(client, f"{console.url}/")
                row = _row_of(home, "DOE, JOHN")
                assert "3 in 1 series" in row
                assert "1 image of another patient refused" in row
                assert "ROE" not in home

                _, _, page = await get(client, console.url + study)
                assert "ROE" not in page  # the page is DOE's: whom the image named stays out
                facts = re.search(r'id="refused">(.*?)</strong>', page)
                assert facts, page
                assert unescape(facts.group(1)) == "1 image of another patient refused, not sent"
                warnings = re.search(r'id="warnings">(.*?)</div>', page, re.DOTALL)
                assert warnings, page
                (first, *_) = re.findall(r"<li>(.*?)</li>", warnings.group(1), re.DOTALL)
                assert unescape(first) == (
                    "1 image that came for this study was refused because it carries another "
                    "patient's name, record number or birth date (it came from CT_ROOM_2). It "
                    "is not sent with this study. Ask radiology to check the study on the "
                    "scanner or in the PACS; once put right and sent to this agent again, it "
                    "is added here."
                )

                # The page opened before the refusal: ticked, but its warnings are old.
                form = {
                    "csrf_token": token,
                    "recipient": RECEIVER,
                    "acknowledge": "yes",
                    "warnings": seen_before,
                }
                status, _, stale = await post(client, f"{console.url}{study}/send", form)
                assert status == 400
                assert "There is a new warning" in unescape(stale)

                form["warnings"] = _warnings_field(page)
                status, job, _ = await post(client, f"{console.url}{study}/send", form)
                assert (status, job[:6]) == (303, "/jobs/")
    records = [json.loads(line) for line in console.audit.read_text().splitlines()]
    (acknowledged,) = [r for r in records if r["action"] == "completeness-acknowledged"]
    assert any("was refused" in w for w in acknowledged["detail"]["warnings"])
    assert not any("ROE" in line for line in console.audit.read_text().splitlines())
