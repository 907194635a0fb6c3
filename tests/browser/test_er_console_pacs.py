"""The ER console's "Find in PACS", in headless Chromium at 1366 x 768, with Orthanc as the
hospital PACS: C-FIND by medical record number (and the plain answers when nothing matches or
the form is not filled in as asked), then Fetch: a C-MOVE of the study into the running agent's
own AE title; the study then opens with its counts checked against the PACS. With the PACS's
DICOMweb address set, Fetch retrieves over WADO-RS in the background, its page following the
study in, and saying plainly when the PACS no longer has the study."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agent_harness import NURSE, NURSE_PASSWORD, AgentProcess, running_agent
from console_browsing import fits_the_screen, sign_in, snap, workstation
from inbox_harness import make_multi_series_study
from peers.dcmtk import storescu
from peers.orthanc import OrthancServer
from playwright.async_api import Browser, expect

from sending_site.synthetic import make_ct_study

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]

PATIENT = {
    "patient_name": "TRAUMA^ALEX",
    "patient_id": "MRN-4242",
    "patient_birth_date": "19900607",
    "accession_number": "ACC-77",
}
SLOW = 120_000  # ms


async def test_find_a_study_in_the_pacs_and_fetch_it_into_the_agent(
    browser: Browser, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    study = make_multi_series_study(tmp_path / "study", seed=5252, **PATIENT)
    count = sum(len(files) for files in study.values())
    # The relay is not needed to find and fetch: nothing listens at this address.
    agent = AgentProcess(tmp_path / "agent", "http://127.0.0.1:9", "unused-credential")
    # What the PACS administrator adds: the agent's AE title, address and port.
    known = {
        agent.ae_title: {
            "AET": agent.ae_title,
            "Host": "127.0.0.1",
            "Port": agent.dicom_port,
            "AllowFind": True,
            "AllowMove": True,
            "AllowEcho": True,
            "AllowStore": True,
        }
    }
    orthanc = orthanc_factory(dicom_modalities=known)
    stored = await asyncio.to_thread(storescu, orthanc.dicom_port, [tmp_path / "study"])
    assert stored.returncode == 0, stored.stderr
    agent.pacs = (orthanc.ae_title, orthanc.host, orthanc.dicom_port)
    await asyncio.to_thread(agent.add_user)
    with running_agent(agent):
        async with workstation(browser) as page:
            await sign_in(page, agent.url, NURSE, NURSE_PASSWORD)
            await expect(page.locator("#placeholder")).to_contain_text("No study has arrived")
            await page.get_by_role("link", name="Find in PACS").click()

            await page.get_by_role("button", name="Search the PACS").click()
            await expect(page.locator("#problem")).to_contain_text(
                "by medical record number, by accession number, or by name and date of birth"
            )
            await page.get_by_label("Name (family, given)").fill("Nobody, Known")
            await page.get_by_label("Date of birth").fill("1901-01-01")
            await page.get_by_role("button", name="Search the PACS").click()
            await expect(page.locator("#no-matches")).to_be_visible()

            await page.get_by_label("Name (family, given)").fill("")
            await page.get_by_label("Date of birth").fill("")
            await page.get_by_label("Medical record number").fill("MRN-4242")
            await page.get_by_role("button", name="Search the PACS").click()
            row = page.locator("#matches tbody tr")
            await expect(row).to_have_count(1)
            await expect(row).to_contain_text("TRAUMA, ALEX")
            await expect(row).to_contain_text(str(count))
            assert "MRN-4242" not in page.url  # searched with a POST: not in any address
            assert await fits_the_screen(page)
            await snap(page, "er-pacs-found.png")

            await row.get_by_role("button", name="Fetch").click()
            await expect(page.locator("#fetched")).to_contain_text(
                f"The PACS sent {count} images", timeout=SLOW
            )
            await snap(page, "er-pacs-fetched.png")
            await page.get_by_role("link", name="Open the study").click()
            series = page.locator("#series tbody tr")
            await expect(series).to_have_count(len(study))
            for state in await series.all_inner_texts():
                assert state.rstrip().endswith("complete"), state
            # Whole, and once nothing has arrived for the stable age (1 s), nothing to warn of.
            for _ in range(60):
                if await page.locator("#complete").count():
                    break
                await page.wait_for_timeout(500)
                await page.reload()
            await expect(page.locator("#complete")).to_be_visible()
            await snap(page, "er-pacs-study.png")

    actions = [json.loads(line) for line in agent.audit().splitlines()]
    queries = [a for a in actions if a["action"] == "pacs-query"]
    assert [q["detail"]["by"] for q in queries] == ["name and birth date", "medical record number"]
    assert "MRN-4242" not in agent.audit()
    assert "MRN-4242" not in agent.log()
    fetched = [a for a in actions if a["action"] == "pacs-retrieve"]
    assert len(fetched) == 1
    assert fetched[0]["detail"]["received"] == count


async def _found_in_the_pacs(page: Any, agent: AgentProcess, count: int) -> Any:
    """Signed in, the study searched for by record number: its row, with its Fetch button."""
    await sign_in(page, agent.url, NURSE, NURSE_PASSWORD)
    await page.get_by_role("link", name="Find in PACS").click()
    await page.get_by_label("Medical record number").fill("MRN-4242")
    await page.get_by_role("button", name="Search the PACS").click()
    row = page.locator("#matches tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text(str(count))
    return row


async def _dicomweb_pacs_and_agent(
    orthanc_factory: Callable[..., OrthancServer], tmp_path: Path, seed: int
) -> tuple[OrthancServer, AgentProcess, dict[str, list[Path]]]:
    """Orthanc with its DICOMweb plugin holding the study, and an agent set to search it
    (C-FIND) and fetch from it over DICOMweb: Orthanc does not know the agent as a DICOM
    node, so a C-MOVE could not reach it."""
    study = make_multi_series_study(tmp_path / "study", seed=seed, **PATIENT)
    orthanc = orthanc_factory(dicomweb=True)
    stored = await asyncio.to_thread(storescu, orthanc.dicom_port, [tmp_path / "study"])
    assert stored.returncode == 0, stored.stderr
    agent = AgentProcess(
        tmp_path / "agent",
        "http://127.0.0.1:9",
        "unused-credential",
        pacs=(orthanc.ae_title, orthanc.host, orthanc.dicom_port),
        pacs_web=orthanc.dicomweb_url,
    )
    await asyncio.to_thread(agent.add_user)
    return orthanc, agent, study


async def test_fetch_over_dicomweb_follows_the_study_in(
    browser: Browser, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    _, agent, study = await _dicomweb_pacs_and_agent(orthanc_factory, tmp_path, 5353)
    count = sum(len(files) for files in study.values())
    with running_agent(agent):
        async with workstation(browser) as page:
            row = await _found_in_the_pacs(page, agent, count)
            await row.get_by_role("button", name="Fetch").click()
            await expect(page.get_by_role("heading")).to_contain_text("Fetching a study")
            assert "/pacs/fetches/" in page.url
            await expect(page.locator("#fetched")).to_contain_text(
                f"The PACS sent {count} images", timeout=SLOW
            )
            assert await fits_the_screen(page)
            await snap(page, "er-pacs-fetched-dicomweb.png")
            await page.get_by_role("link", name="Open the study").click()
            series = page.locator("#series tbody tr")
            await expect(series).to_have_count(len(study))
            for state in await series.all_inner_texts():
                assert state.rstrip().endswith("complete"), state

    actions = [json.loads(line) for line in agent.audit().splitlines()]
    fetched = [a for a in actions if a["action"] == "pacs-retrieve"]
    assert len(fetched) == 1
    assert fetched[0]["outcome"] == "success"
    assert fetched[0]["detail"]["over"] == "dicomweb"
    assert fetched[0]["detail"]["received"] == count


async def test_fetch_over_dicomweb_of_a_study_gone_from_the_pacs_says_so(
    browser: Browser, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    orthanc, agent, study = await _dicomweb_pacs_and_agent(orthanc_factory, tmp_path, 5454)
    count = sum(len(files) for files in study.values())
    with running_agent(agent):
        async with workstation(browser) as page:
            row = await _found_in_the_pacs(page, agent, count)
            # Merged away in the PACS between the search and the Fetch.
            (gone,) = orthanc.studies()
            await asyncio.to_thread(orthanc.delete, f"/studies/{gone}")
            await row.get_by_role("button", name="Fetch").click()
            await expect(page.locator("#problem")).to_contain_text(
                "no longer has this study", timeout=SLOW
            )
            await expect(page.locator("#problem")).to_contain_text("HTTP 404")
            await snap(page, "er-pacs-fetch-gone.png")

    actions = [json.loads(line) for line in agent.audit().splitlines()]
    fetched = [a for a in actions if a["action"] == "pacs-retrieve"]
    assert [(a["outcome"], a["detail"]["received"]) for a in fetched] == [("failure", 0)]


async def test_each_fetch_button_says_which_study(
    browser: Browser, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    """Two studies of one patient: each row's Fetch is named by its own study (a screen reader
    hears the button alone), and the column of buttons has a heading."""
    orthanc = orthanc_factory()
    for n, (day, accession) in enumerate((("20261206", "ACC-1"), ("20261207", "ACC-2"))):
        folder = tmp_path / f"study-{n}"
        patient = {**PATIENT, "accession_number": accession, "study_date": day}
        make_ct_study(folder, 2, seed=5555 + n, **patient)
        stored = await asyncio.to_thread(storescu, orthanc.dicom_port, [folder])
        assert stored.returncode == 0, stored.stderr
    agent = AgentProcess(
        tmp_path / "agent",
        "http://127.0.0.1:9",
        "unused-credential",
        pacs=(orthanc.ae_title, orthanc.host, orthanc.dicom_port),
    )
    await asyncio.to_thread(agent.add_user)
    with running_agent(agent):
        async with workstation(browser) as page:
            await sign_in(page, agent.url, NURSE, NURSE_PASSWORD)
            await page.get_by_role("link", name="Find in PACS").click()
            await page.get_by_label("Medical record number").fill("MRN-4242")
            await page.get_by_role("button", name="Search the PACS").click()
            rows = page.locator("#matches tbody tr")
            await expect(rows).to_have_count(2)
            names = []
            for row in await rows.all():
                button = row.get_by_role("button")
                day, accession = (
                    ("2026-12-06", "ACC-1")
                    if "ACC-1" in await row.inner_text()
                    else ("2026-12-07", "ACC-2")
                )
                await expect(button).to_have_accessible_name(
                    re.compile(rf"^Fetch TRAUMA, ALEX: .+ of {day}, accession {accession}$")
                )
                names.append(await button.evaluate("(b) => b.textContent"))
            assert names[0] != names[1]
            # The buttons' column has a heading too (a screen reader says it in each row).
            heading = page.locator("#matches thead th").last
            await expect(heading).to_have_accessible_name(re.compile(r"\w"))
            await snap(page, "er-pacs-two-studies.png")
