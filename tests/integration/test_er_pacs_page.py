"""The ER console's "Find in PACS" over real HTTP (in-process console), with Orthanc as the
hospital PACS: a Fetch the PACS refuses keeps the search that found the study; a name typed
without its comma, found nowhere, is told how to write it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from html import unescape
from pathlib import Path

import pytest
from er_pages import er_console
from inbox_harness import make_multi_series_study
from peers.dcmtk import storescu
from peers.orthanc import OrthancServer
from test_console_app import post

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]


async def _pacs_holding(
    tmp_path: Path, orthanc_factory: Callable[..., OrthancServer], seed: int, **patient: str
) -> tuple[str, ...]:
    """A PACS (Orthanc, which does not know the agent) holding a study of `patient`: the
    console's settings for it."""
    make_multi_series_study(tmp_path / "study", seed, **patient)
    orthanc = orthanc_factory()  # no DicomModalities: the agent is a stranger
    stored = await asyncio.to_thread(storescu, orthanc.dicom_port, [tmp_path / "study"])
    assert stored.returncode == 0, stored.stderr
    return (
        f"pacs.ae_title={orthanc.ae_title}",
        f"pacs.host={orthanc.host}",
        f"pacs.port={orthanc.dicom_port}",
    )


def _field(page: str, name: str) -> str:
    """The value a text field of the search form shows."""
    found = re.search(rf'<input id="{name}" name="{name}" value="([^"]*)"', page)
    assert found, page
    return unescape(found.group(1))


async def test_a_refused_fetch_keeps_the_search(
    tmp_path: Path, orthanc_factory: Callable[..., OrthancServer]
) -> None:
    """The PACS answers the search but refuses to send the study to this agent (it does not
    know its AE title): the page says what to ask the PACS administrator, and the record
    number searched for is still in its field, for another try once they have."""
    pacs = await _pacs_holding(
        tmp_path, orthanc_factory, seed=5155, patient_name="TRAUMA^ALEX", patient_id="MRN-4242"
    )
    async with er_console(tmp_path, *pacs) as er:
        search = {"csrf_token": er.token, "mrn": "MRN-4242"}
        status, _, found = await post(er.client, f"{er.console.url}/pacs", search)
        assert status == 200
        assert _field(found, "mrn") == "MRN-4242"
        (fetch,) = re.findall(r'<form method="post" action="/pacs/fetch">(.*?)</form>', found)
        form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', fetch))
        status, _, refused = await post(er.client, f"{er.console.url}/pacs/fetch", form)
    assert status == 502
    assert "add AE title TRAUMARELAY" in refused
    assert _field(refused, "mrn") == "MRN-4242"


async def test_a_name_without_its_comma_found_nowhere_says_how_to_write_it(
    tmp_path: Path, orthanc_factory: Callable[..., OrthancServer]
) -> None:
    """ "trauma alex" is read as one family name: the PACS finds nothing, and the page says to
    write the family name, a comma, then the given name; written so, it is found."""
    pacs = await _pacs_holding(
        tmp_path,
        orthanc_factory,
        seed=5156,
        patient_name="TRAUMA^ALEX",
        patient_birth_date="19900607",
    )
    async with er_console(tmp_path, *pacs) as er:
        search = {"csrf_token": er.token, "name": "trauma alex", "birth_date": "1990-06-07"}
        url = f"{er.console.url}/pacs"
        _, _, nothing = await post(er.client, url, search)
        _, _, found = await post(er.client, url, {**search, "name": "trauma, alex"})
    assert 'id="no-matches"' in nothing
    assert "family name, a comma, then the given name" in unescape(nothing)
    assert 'id="matches"' in found
