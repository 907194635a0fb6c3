"""The sending site's command line for the phone and the paper: `push --sheet --link-qr`,
`reissue --sheet`, and break-glass needing a clinician. Sheets are rasterized with poppler's
pdftoppm and decoded with zxing-cpp, as a scanner at the trauma center would read them, and
their words read back with pdftotext. The machine's time zone is set (Asia/Tokyo, no daylight
saving) so the sheet's local times can be checked to the minute."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import aiohttp
import pytest
import zxingcpp
from peers import running_under_ci
from PIL import Image
from relay_harness import RECEIVER, Relay, running_relay

from receiving_site.redeem import RedeemRequest, redeem
from sending_site import journal
from sending_site.phone import token_from_link
from sending_site.synthetic import make_ct_study
from site_agent.client import RelayClient
from transfer_codes.phone import decode_key, open_sealed, split_link
from trauma_relay.cli import main

PAGE_POINTS = {"a4": ("595.28", "841.89"), "letter": ("612", "792")}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "sheets"
PHONE = "+1 555 010 0199 ext 42"


@pytest.fixture(autouse=True)
def tokyo_time() -> Iterator[None]:
    """The process's local time zone is Asia/Tokyo (JST, UTC+9 all year) during each test."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def _jst(epoch: float) -> str:
    """`epoch` as the sheet must print it: Tokyo time, to the minute, with the zone's name."""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.timezone(datetime.timedelta(hours=9)))
    return f"{moment:%Y-%m-%d %H:%M} JST"


def _sheet_words(pdf: Path) -> str:
    """The sheet's text, as pdftotext reads it, on one line."""
    text = subprocess.run(
        [_poppler("pdftotext"), str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    return " ".join(text.split())


def _poppler(tool: str) -> str:
    found = shutil.which(tool)
    if found:
        return found
    message = f"{tool} is not installed (Debian package poppler-utils)"
    if running_under_ci():
        pytest.fail(f"{message}; CI must have it", pytrace=False)
    pytest.skip(message)


def _decode_png(png: bytes) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(Image.open(BytesIO(png)).convert("L"))]


def _sheet_codes(pdf: Path, paper: str) -> list[str]:
    """Check the sheet is one page of `paper`, rasterize it at 150 dpi and decode its QR."""
    info = subprocess.run(
        [_poppler("pdfinfo"), str(pdf)], check=True, capture_output=True, text=True
    ).stdout
    assert re.search(r"^Pages:\s+1$", info, re.MULTILINE), info
    width, height = PAGE_POINTS[paper]
    assert f"Page size:       {width} x {height} pts" in info, info
    out = pdf.with_suffix("")
    subprocess.run(
        [_poppler("pdftoppm"), "-r", "150", "-png", "-singlefile", str(pdf), str(out)],
        check=True,
    )
    png = out.with_suffix(".png").read_bytes()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{pdf.stem}.png").write_bytes(png)
    return _decode_png(png)


def _push_args(relay: Relay, study: Path, *extra: str) -> list[str]:
    return ["push", str(study), "--relay", relay.url, "--to", RECEIVER, "--yes", *extra]


async def _cli(*argv: str) -> int:
    """Run `trauma-relay ...` in a thread (it runs its own event loop) beside our relay."""
    return await asyncio.to_thread(main, list(argv))


async def _redeem(relay: Relay, root: Path, secret: str) -> int:
    result = await redeem(
        RedeemRequest(
            relay=relay.url,
            credential=relay.receiver_credential,
            state_dir=root / "tc",
            secret=secret,
            out=root / "out",
        ),
        lambda _: None,
    )
    return result.instances


@pytest.mark.asyncio
@pytest.mark.parametrize("paper", ["a4", "letter"])
async def test_push_writes_a_sheet_and_link_qr_that_work(
    tmp_path: Path,
    paper: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_ct_study(tmp_path / "study", 3)
    sheet = tmp_path / f"sheet-{paper}.pdf"
    link_qr = tmp_path / "link.png"
    async with running_relay(tmp_path / "relay") as relay:
        monkeypatch.setenv("TRAUMA_RELAY_CREDENTIAL", relay.sender_credential)
        code = await _cli(
            *_push_args(relay, tmp_path / "study"),
            "--state",
            str(tmp_path / "er"),
            "--qr",
            str(tmp_path / "code.png"),
            "--sheet",
            str(sheet),
            "--paper",
            paper,
            "--link-qr",
            str(link_qr),
            "--site-phone",
            PHONE,
            "--json",
            "--yes",
        )
        assert code == 0
        pushed = json.loads(capsys.readouterr().out)
        assert pushed["sheet_pdf"] == str(sheet)
        assert pushed["link_qr_png"] == str(link_qr)
        record = journal.load(tmp_path / "er", pushed["transfer_id"])

        scanned = _sheet_codes(sheet, paper)
        assert scanned == [record.capability]
        words = _sheet_words(sheet)
        for expected in (
            "Patient label (stick here)",
            "County Level I Trauma Center",
            "From St. Mary's Emergency Department",
            f"Phone: {PHONE}",
            pushed["code"],
            "CT TRAUMA PANSCAN: 1 series, 3 images",
            f"Use before {_jst(pushed['expires_at'])}",
            f"Relay {relay.url}",
            "The family still has to authorize",
            f"call the sending hospital ({PHONE})",
        ):
            assert expected in words, (expected, words)
        assert "BREAK-GLASS" not in words
        assert "replaces" not in words
        assert _decode_png(link_qr.read_bytes()) == [pushed["authorization_url"]]
        assert pushed["authorization_url"].endswith(
            f"/authorize#{record.authorization_token}.{record.phone_key}"
        )

        async with RelayClient(relay.url, None) as patient:
            await patient.request(
                "POST",
                "/api/v1/authorizations",
                json={"token": token_from_link(pushed["authorization_url"])},
            )
        assert await _redeem(relay, tmp_path, scanned[0]) == 3


async def _phone_status(relay: Relay, token: str) -> dict[str, object]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.get(relay.url + "/authorize") as r:
            cookie = r.cookies["tr_csrf"].value
        headers = {"Cookie": f"tr_csrf={cookie}", "X-CSRF-Token": cookie, "Origin": relay.url}
        async with http.post(
            relay.url + "/api/v1/phone/status", json={"token": token}, headers=headers
        ) as r:
            assert r.status == 200
            return dict(await r.json())


@pytest.mark.asyncio
async def test_reissue_writes_a_new_sheet_and_gives_the_phone_the_new_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_ct_study(tmp_path / "study", 2)
    async with running_relay(tmp_path / "relay") as relay:
        monkeypatch.setenv("TRAUMA_RELAY_CREDENTIAL", relay.sender_credential)
        common = ("--state", str(tmp_path / "er"), "--qr", str(tmp_path / "code.png"), "--json")
        assert await _cli(*_push_args(relay, tmp_path / "study", *common)) == 0
        pushed = json.loads(capsys.readouterr().out)
        token, phone_key = split_link(pushed["authorization_url"])
        async with RelayClient(relay.url, None) as patient:
            await patient.request("POST", "/api/v1/authorizations", json={"token": token})
        before = await _phone_status(relay, token)

        sheet = tmp_path / "new-sheet.pdf"
        assert (
            await _cli(
                "reissue",
                pushed["transfer_id"],
                *common,
                "--sheet",
                str(sheet),
                "--paper",
                "letter",
            )
            == 0
        )
        reissued = json.loads(capsys.readouterr().out)
        assert reissued["code"] != pushed["code"]
        record = journal.load(tmp_path / "er", pushed["transfer_id"])

        after = await _phone_status(relay, token)
        key = decode_key(phone_key)
        old_code = open_sealed(key, "code", base64.b64decode(str(before["code"])))
        new_code = open_sealed(key, "code", base64.b64decode(str(after["code"])))
        assert old_code["code"] == pushed["code"]
        assert new_code["code"] == reissued["code"]
        assert new_code["capability"] == record.capability
        assert after["summary"] == before["summary"]

        scanned = _sheet_codes(sheet, "letter")
        assert scanned == [record.capability]
        assert await _redeem(relay, tmp_path, scanned[0]) == 2

        # Redeemed, the relay takes no new code: the journal keeps the code it took, so no
        # page or sheet shows a code that never worked.
        assert await _cli("reissue", pushed["transfer_id"], *common) != 0
        assert journal.load(tmp_path / "er", pushed["transfer_id"]) == record


@pytest.mark.asyncio
async def test_a_reissued_sheet_says_which_code_it_replaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Break-glass on the sheet in its frame, the phone number from the site setting, and the
    issue time of the code each re-issued sheet replaces, from the journal."""
    make_ct_study(tmp_path / "study", 2)
    state = tmp_path / "er"
    first_reissue = datetime.datetime(2027, 1, 15, 8, 0, tzinfo=datetime.UTC).timestamp()
    async with running_relay(tmp_path / "relay") as relay:
        monkeypatch.setenv("TRAUMA_RELAY_CREDENTIAL", relay.sender_credential)
        monkeypatch.setenv("TRAUMA_RELAY_SITE_PHONE", PHONE)
        common = ("--state", str(state), "--qr", str(tmp_path / "code.png"), "--json")
        pushed_sheet = tmp_path / "glass-pushed.pdf"
        before_push = time.time()
        assert (
            await _cli(
                *_push_args(relay, tmp_path / "study"),
                "--break-glass",
                "Unconscious after a fall, no family reachable.",
                "--clinician",
                "Dr. Rivera",
                "--sheet",
                str(pushed_sheet),
                *common,
            )
            == 0
        )
        pushed = json.loads(capsys.readouterr().out)
        record = journal.load(state, pushed["transfer_id"])
        assert len(record.issued_at) == 1
        assert before_push <= record.issued_at[0] <= time.time()
        words = _sheet_words(pushed_sheet)
        assert "BREAK-GLASS Authorized by a clinician" in words
        assert "still has to authorize" not in words
        assert "replaces" not in words
        assert f"Phone: {PHONE}" in words

        sheets = []
        for n, issued in enumerate([first_reissue, None, None]):
            record = journal.load(state, pushed["transfer_id"])
            if n == 0:
                record.issued_at = [issued]  # a known time, so the sheet can be checked
            if n == 2:
                record.issued_at = []  # a journal from before issue times were recorded
            journal.save(state, record)
            replaced = record.issued_at[-1] if record.issued_at else None
            sheet = tmp_path / f"glass-reissued-{n}.pdf"
            assert await _cli("reissue", pushed["transfer_id"], *common, "--sheet", str(sheet)) == 0
            code = json.loads(capsys.readouterr().out)["code"]
            assert _sheet_codes(sheet, "a4") == [journal.load(state, record.transfer_id).capability]
            words = _sheet_words(sheet)
            assert code in words
            assert "BREAK-GLASS" in words
            assert f"Phone: {PHONE}" in words
            if replaced is None:
                assert "This sheet replaces an earlier code: that code no longer works." in words
            else:
                assert f"This sheet replaces the code issued at {_jst(replaced)}:" in words
            sheets.append(words)
        assert "replaces the code issued at 2027-01-15 17:00 JST:" in sheets[0]
        assert len(journal.load(state, pushed["transfer_id"]).issued_at) == 1


@pytest.mark.parametrize(
    "phone", [["--site-phone", "call the ER desk"], ["--site-phone", "12"], ["env:ask Bob"]]
)
def test_a_site_phone_that_is_not_a_number_is_refused_before_anything_is_sent(
    tmp_path: Path,
    phone: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_ct_study(tmp_path / "study", 1)
    if phone[0].startswith("env:"):
        monkeypatch.setenv("TRAUMA_RELAY_SITE_PHONE", phone[0].removeprefix("env:"))
        phone = []
    # Nothing listens on port 9: the refusal must come before any attempt to reach the relay.
    argv = ["push", str(tmp_path / "study"), "--relay", "http://127.0.0.1:9", "--to", RECEIVER]
    assert main([*argv, "--state", str(tmp_path / "er"), *phone]) == 2
    err = capsys.readouterr().err
    assert "is not a phone number" in err
    assert "TRAUMA_RELAY_SITE_PHONE" in err
    assert not (tmp_path / "er").exists()


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--break-glass", "Unconscious after a fall; nobody with him."], "--clinician NAME"),
        (["--break-glass", "Unconscious", "--clinician", "Dr. Rivera"], "a sentence"),
        (["--clinician", "Dr. Rivera"], "only used with --break-glass"),
    ],
)
def test_break_glass_needs_a_reason_and_a_clinician(
    tmp_path: Path, extra: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["push", str(tmp_path), "--relay", "http://127.0.0.1:9", "--to", RECEIVER, *extra]
    assert main(argv) == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize("paper", ["a4", "letter"])
def test_the_fullest_sheet_still_fits_one_page_and_its_qr_decodes(
    tmp_path: Path, paper: str
) -> None:
    """Everything a sheet can carry at its longest (display names of 200 characters, a
    64-character description, a long relay address, break-glass and a replaced code)."""
    from sending_site.sheet import TransferSheet, render
    from transfer_codes.capability import Capability

    capability = Capability.generate("703QS80TRDCGYGA1XP7JQKJX").to_text()
    sheet = TransferSheet(
        transfer_id="703QS80TRDCGYGA1XP7JQKJX",
        destination="W" * 200,
        sender="W" * 200,
        code="56BZ-TTNP-Q6QT-EPXN",
        capability=capability,
        expires_at=time.time(),
        break_glass=True,
        relay="https://" + "w" * 60 + ".example.org:8443",
        site_phone="+1 (555) 010-0199 ext 123456",
        study_description="W" * 64,
        series_count=1200,
        instance_count=5000,
        reissued=True,
        replaces_code_issued_at=time.time(),
    )
    pdf = tmp_path / f"fullest-{paper}.pdf"
    pdf.write_bytes(render(sheet, paper))
    assert _sheet_codes(pdf, paper) == [capability]
    words = _sheet_words(pdf)
    assert words.count("W...") == 2  # the two names are cut, and say so
    assert "BREAK-GLASS" in words
    assert "This sheet replaces the code issued at" in words
    assert "Treat this sheet like a key" in words


def test_a_sheet_printed_while_the_study_is_still_arriving_gives_no_image_count() -> None:
    from sending_site.sheet import TransferSheet, study_line

    sheet = TransferSheet(
        transfer_id="703QS80TRDCGYGA1XP7JQKJX",
        destination="County Trauma",
        sender="St. Mary's ER",
        code="56BZ-TTNP-Q6QT-EPXN",
        capability="capability",
        expires_at=time.time(),
        study_description="CT TRAUMA",
    )
    assert study_line(sheet) == "CT TRAUMA: images still arriving"
    counted = dataclasses.replace(sheet, series_count=3, instance_count=1203)
    assert study_line(counted) == "CT TRAUMA: 3 series, 1,203 images"
