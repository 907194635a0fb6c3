"""The sending site's command line for the phone and the paper: `push --sheet --link-qr`,
`reissue --sheet`, and break-glass needing a clinician. Sheets are rasterized with poppler's
pdftoppm and decoded with zxing-cpp, as a scanner at the trauma center would read them."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess
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
            "push",
            str(tmp_path / "study"),
            "--relay",
            relay.url,
            "--to",
            RECEIVER,
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
        push = ("push", str(tmp_path / "study"), "--relay", relay.url, "--to", RECEIVER, "--yes")
        assert await _cli(*push, *common) == 0
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
