"""The trauma console over real HTTP (in-process, no relay listening at its address): the code is
parsed by the agent before anything is sent, so a typing mistake or a damaged QR text is told
on the page at once and costs no attempt; an agent without a PACS or a credential says so and
redeems nothing; a transfer it does not know has no page and no thumbnails."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from console_harness import running_console
from test_console_app import browser_like, get, post, signed_in

from receiving_site.console import imports
from receiving_site.redeem import RedeemRequest
from transfer_codes.capability import Capability
from transfer_codes.codes import RedemptionCode
from transfer_codes.tokens import new_transfer_id

pytestmark = pytest.mark.asyncio
_STORE_EARLY = ("pacs.as_they_arrive=true",)  # each image into the PACS once verified


def _swapped(code: str) -> str:
    symbols = code.replace("-", "")
    i = next(i for i in range(15) if symbols[i] != symbols[i + 1])
    return symbols[:i] + symbols[i + 1] + symbols[i] + symbols[i + 2 :]


def _ready(tmp_path: Path) -> tuple[str, ...]:
    credential = tmp_path / "credential"
    credential.write_text("site-credential\n", encoding="utf-8")
    return (f"relay.credential_file={credential}", "pacs.host=127.0.0.1", "pacs.port=9")


async def test_a_mistyped_code_is_told_on_the_page_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    code = RedemptionCode.generate(17).grouped()
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path)) as console,
        browser_like() as client,
    ):
        token = await signed_in(client, console)
        form = {"csrf_token": token, "code": _swapped(code)}
        status, _, page = await post(client, f"{console.url}/redeem", form)
        assert status == 400
        assert "typing mistake" in page
        assert "No attempt was used" in page
        assert _swapped(code) in page  # given back to correct

        qr = "TR1:T:NOT-A-TRANSFER:K:SECRET"
        status, _, page = await post(
            client, f"{console.url}/redeem", {"csrf_token": token, "code": qr}
        )
        assert status == 400
        assert "SECRET" not in page  # a scanned QR's text is not shown back

        status, _, page = await post(
            client, f"{console.url}/redeem", {"csrf_token": token, "code": " "}
        )
        assert (status, "Type the code" in page) == (400, True)
    audit = console.audit.read_text("utf-8")
    assert "study-redeemed" not in audit


@pytest.mark.parametrize(
    "address",
    [
        "https://www.example.org/patients/123",  # a hospital page's QR, scanned by mistake
        "HTTP://INTRANET.HOSPITAL.LOCAL:8080/PACS",  # a scanner with caps lock on
        # The family's link, its '#' typed as another character by a scanner's keyboard layout.
        "https://relay.example/authorize£SECRETtoken.SECRETkey",
    ],
)
async def test_a_web_address_is_named_as_such_and_not_shown_back(
    tmp_path: Path, address: str
) -> None:
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path)) as console,
        browser_like() as client,
    ):
        token = await signed_in(client, console)
        form = {"csrf_token": token, "code": f" {address}\n"}
        status, _, page = await post(client, f"{console.url}/redeem", form)
    assert status == 400
    assert "is a web address, not a transfer code or a transfer QR" in page
    assert "Nothing was sent and no attempt was used" in page
    assert "Character" not in page  # not told as a mistyped code
    # Not shown back: it may be the family's link mangled by a scanner, its key still in it.
    assert address not in page
    assert "study-redeemed" not in console.audit.read_text("utf-8")


def _scanned_with(text: str, layout: dict[str, str]) -> str:
    """`text` as a USB scanner types it when its keyboard layout is not the computer's."""
    return "".join(layout.get(c, c) for c in text)


_GERMAN = {":": "\u00d6", "Y": "Z", "Z": "Y", "/": "-", "#": "\u00a7"}  # a US scanner, German PC
_FRENCH = {":": "M", "1": "&", "2": "\u00e9", "A": "Q", "Q": "A", "W": "Z", "Z": "W"}


@pytest.mark.parametrize(
    "scanned",
    [
        _scanned_with(Capability.generate(new_transfer_id()).to_text(), _GERMAN),
        _scanned_with(Capability.generate(new_transfer_id()).to_text(), _FRENCH),
        # The family's link, every ':' and '/' garbled, its token and key still in it.
        _scanned_with("https://relay.example/authorize#SECRETtoken.SECRETkey", _GERMAN),
    ],
)
async def test_a_qr_garbled_by_the_scanners_keyboard_layout_is_told_so_and_not_shown_back(
    tmp_path: Path, scanned: str
) -> None:
    """A scanner set to another keyboard layout than the computer's types a QR's ':' (and
    more) as other characters: told as that, not as a character to correct in a code, and not
    shown back (a transfer QR or the family's link carries a key)."""
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path)) as console,
        browser_like() as client,
    ):
        token = await signed_in(client, console)
        form = {"csrf_token": token, "code": scanned}
        status, _, page = await post(client, f"{console.url}/redeem", form)
    assert status == 400
    assert "keyboard layout" in page
    assert "Nothing was sent and no attempt was used" in page
    assert "Character" not in page
    assert html.escape(scanned) not in page
    assert "study-redeemed" not in console.audit.read_text("utf-8")


async def test_an_agent_without_a_pacs_redeems_nothing(tmp_path: Path) -> None:
    code = RedemptionCode.generate(18).grouped()
    async with running_console(tmp_path, "receiver") as console, browser_like() as client:
        token = await signed_in(client, console)
        status, _, home = await get(client, f"{console.url}/")
        assert "No PACS is set for this agent (pacs.host" in home
        status, _, page = await post(
            client, f"{console.url}/redeem", {"csrf_token": token, "code": code}
        )
        assert status == 503
        assert "nothing can be imported yet" in page
        assert f'value="{code}"' in page  # kept in the field for when it is set up


async def test_an_unknown_transfer_has_no_page(tmp_path: Path) -> None:
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path)) as console,
        browser_like() as client,
    ):
        await signed_in(client, console)
        for path in ("/imports/" + "0" * 24, "/imports/" + "0" * 24 + "/series/1.png"):
            status, _, page = await get(client, console.url + path)
            assert status == 404
            assert "There is no page at this address" in page


@pytest.mark.parametrize(("assignments", "as_they_arrive"), [((), False), (_STORE_EARLY, True)])
async def test_a_code_entered_is_redeemed_storing_as_they_arrive_when_the_setting_says_so(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    assignments: tuple[str, ...],
    as_they_arrive: bool,
) -> None:
    redeemed: list[RedeemRequest] = []

    async def redeem(req: RedeemRequest, *_: object) -> None:
        redeemed.append(req)
        raise OSError("the bench stops here")

    monkeypatch.setattr(imports, "redeem", redeem)
    code = RedemptionCode.generate(17).grouped()
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path), *assignments) as console,
        browser_like() as client,
    ):
        token = await signed_in(client, console)
        await post(client, f"{console.url}/redeem", {"csrf_token": token, "code": code})
    (req,) = redeemed
    assert req.secret == code
    assert req.as_they_arrive is as_they_arrive


# pynetdicom 3.0 leaves the socket of a refused connection unclosed (its shutdown() raises on
# an unconnected socket before close()); the garbage collector reports it, not our code.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_pacs_out_of_reach_before_the_code_is_sent_says_to_enter_it_again(
    tmp_path: Path,
) -> None:
    """The PACS is checked before the code is spent: out of reach, the page says the code has
    not been used and to enter it again once fixed (the console has no command to run), and
    the code stays in the field."""
    code = RedemptionCode.generate(19).grouped()
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path)) as console,  # PACS: port 9
        browser_like() as client,
    ):
        token = await signed_in(client, console)
        form = {"csrf_token": token, "code": code}
        status, _, page = await post(client, f"{console.url}/redeem", form)
    assert status == 400
    assert "could not be reached" in page
    assert "The code has not been used: once this is fixed, enter the same code again." in page
    assert "command" not in page
    assert f'value="{code}"' in page
