"""Redeem a code or QR capability and deliver the study.

1. Parse the code locally (a typo is caught here and never costs an attempt at the relay), and
   check the destination (a C-ECHO to the PACS, or a test write into the folder): a dead end is
   found while the code is still unspent.
2. Stretch the code (scrypt) with the transfer's salt. Save a random redemption id for this code
   in the state folder, durably, then send the proof with that id and receive the wrapped key;
   a lost answer is asked again (bounded, with backoff) with the same id, and the relay repeats
   the one redemption. Unwrap the key locally and keep it in the state folder.
3. Follow the sealed manifest while the sender may still be uploading (cut-through), staging
   and verifying every object; when the manifest is closed and everything is verified, deliver
   and post the delivery receipt.

Once the code is spent, every failure says how to continue: `--resume TRANSFER_ID`, or simply
the same command with the same code again, which this machine recognises through its saved
redemption id (the relay answers it again; once the relay has the delivery receipt, through
its saved key) and continues where the last run stopped. The transfer's QR does too, even
after its typed code redeemed it: the QR names the transfer, whose saved key it continues from
without asking the relay again.

A study held for review (identity check) and then saved with `--out` is a review copy: the
receipt says so (the relay keeps the transfer open and the family's phone says it is being
checked), this machine keeps the key and the staged images, and the result gives the command
that imports it into the PACS later. Runs of one code on one machine take turns (`turns`), and
a QR's run takes the turn of the code its transfer was redeemed with here.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shlex
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from pydicom.dataset import Dataset

from receiving_site import (
    as_they_arrive,
    batch_staging,
    errors,
    folder_copy,
    hold_record,
    holds,
    identity,
    pacs,
    reconcile,
    staging,
    state,
    stored_count,
    stow,
    turns,
)
from site_agent import retry
from site_agent.client import RelayClient, RelayRefused, RelayUnreachable
from site_agent.dicom_text import date as shown_date
from site_agent.errors import AgentError
from transfer_codes.capability import Capability
from transfer_codes.codes import CODE_LENGTH, RedemptionCode, looks_like_code, symbol_count
from transfer_codes.errors import ManifestError
from transfer_codes.keys import stretch_capability, stretch_code, unwrap
from transfer_codes.manifest import ManifestEntry, ManifestReader, StudySummary
from transfer_codes.phone import is_authorization_link
from transfer_codes.wire import b64decode_text, b64encode_text

WAIT_SECONDS = 20
PARALLEL_DOWNLOADS = 4
# Seconds before each new try of a redemption whose answer did not arrive (same id each time).
REDEEM_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
_ASSOCIATIONS = pacs.DEFAULT_ASSOCIATIONS  # named here: in `RedeemRequest`, `pacs` is a field
# The relay's refusals of a redeemed transfer that is over: expired or revoked (410), or no
# longer readable by this site at all (404: its answer once a transfer has expired, as for one
# that never existed). Nothing more can be taken from it.
GONE_AT_THE_RELAY = errors.GONE_AT_THE_RELAY


@dataclass(frozen=True)
class RedeemRequest:
    relay: str
    credential: str
    state_dir: Path
    secret: str | None = None  # the code or QR text; None with `resume`
    resume: str | None = None  # transfer id of an earlier, interrupted redemption
    out: Path | None = None
    pacs: pacs.PacsAddress | None = None
    give_up_after: float = 6 * 3600.0  # how long to wait for an unfinished upload
    state_given: bool = True  # `--state` was given, so the resume command repeats it
    credential_file: str | None = None  # `--credential-file`, likewise
    skip_identity_check: bool = False  # `--skip-identity-check`: a person reviewed the hold
    local_patient_id: str | None = None  # file the study under this local record number
    local_issuer: str = ""  # the issuer of `local_patient_id`
    confirm_local_record: bool = False  # a person checked the PACS's record is this patient
    new_local_patient: bool = False  # `local_patient_id` was just given to this patient
    assume_yes: bool = False  # `--yes`: stored without asking, so the resume command repeats it
    associations: int = _ASSOCIATIONS  # C-STORE associations at once
    stow: stow.StowDestination | None = None  # store over STOW-RS there instead of C-STORE
    as_they_arrive: bool = False  # store each image once verified, not once all are
    # How to continue once the code is spent, for messages; empty: the `--resume` command.
    how_to_continue: str = ""

    def resume_command(self, transfer_id: str) -> str:
        """The command that continues this redemption of `transfer_id`, for messages."""
        words = ["trauma-relay", "redeem", "--resume", transfer_id, "--relay", self.relay]
        if self.pacs is not None:
            words += ["--pacs", str(self.pacs)]
            if self.pacs.calling_ae_title != pacs.DEFAULT_CALLING_AE_TITLE:
                words += ["--calling-aet", self.pacs.calling_ae_title]
            if self.stow is not None:
                words += ["--stow", self.stow.url]
                if self.stow.credential_file is not None:
                    words += ["--stow-credential-file", os.path.abspath(self.stow.credential_file)]
            elif self.associations != pacs.DEFAULT_ASSOCIATIONS:
                words += ["--associations", str(self.associations)]
            if self.as_they_arrive:
                words.append("--as-they-arrive")
            if self.local_patient_id is not None:
                words += ["--local-patient-id", self.local_patient_id]
                if self.local_issuer:
                    words += ["--local-issuer", self.local_issuer]
                if self.confirm_local_record:
                    words.append("--confirm-local-record")
                if self.new_local_patient:
                    words.append("--new-local-patient")
            if self.skip_identity_check:
                words.append("--skip-identity-check")
        else:
            words += ["--out", os.path.abspath(self.out or Path.cwd())]
        if self.state_given:
            words += ["--state", os.path.abspath(self.state_dir)]
        if self.credential_file:
            words += ["--credential-file", os.path.abspath(self.credential_file)]
        if self.assume_yes:
            words.append("--yes")
        return shlex.join(words)


@dataclass(frozen=True)
class Unlocked:
    transfer_id: str
    sender: str
    break_glass: bool
    consent_from_sending_site: bool = False  # see `CONSENT_FROM_SENDER`


# Said with the preview when the relay saw the patient's authorization come from the sending
# hospital's own address: it holds the link, so it could have given that consent itself.
CONSENT_FROM_SENDER = (
    "CHECK CONSENT: the patient's authorization came from the sending hospital's own network "
    "address, not from a phone elsewhere. Make sure the patient or family really agreed."
)


@dataclass(frozen=True)
class Progress:
    objects_done: int
    objects_listed: int
    manifest_closed: bool
    item: staging.StagedObject | None = None  # the object just staged and verified


@dataclass(frozen=True)
class Filing:
    """A person's answer to the preview that also says under which local record to file the
    study (the console's identity page): the `--local-patient-id`, `--confirm-local-record`
    and `--new-local-patient` of the command line."""

    local_patient_id: str
    confirm_local_record: bool = False
    new_local_patient: bool = False
    local_issuer: str | None = None  # None: the agent's `identity.local_issuer`

    def applied_to(self, req: RedeemRequest) -> RedeemRequest:
        return replace(
            req,
            local_patient_id=self.local_patient_id,
            confirm_local_record=self.confirm_local_record,
            new_local_patient=self.new_local_patient,
            local_issuer=req.local_issuer if self.local_issuer is None else self.local_issuer,
        )


@dataclass(frozen=True)
class Stored:
    """Images stored into the PACS so far, of `images_total`."""

    images_done: int
    images_total: int


@dataclass(frozen=True)
class RedeemResult:
    transfer_id: str
    instances: int
    bytes: int
    destination: str
    break_glass: bool
    decompressed: int = 0  # images decompressed because the PACS refused their format
    note: str = ""  # says so, for staff; empty when none was
    filed_under: reconcile.Demographics | None = None  # the local record, when reconciled
    review_command: str = ""  # a review copy of a held study: the command that imports it later
    delivered_before: float | None = None  # this machine had delivered it then (epoch seconds)


@dataclass(frozen=True)
class Preview:
    """The verified study summary, once the manifest gives it: what staff check against the
    patient in front of them. `sender` is the sending site's display name from the relay;
    `break_glass` whether the relay says a clinician authorized by break-glass, which the ER
    may add after the summary was sealed (it then says the patient or family)."""

    summary: StudySummary
    sender: str = ""
    break_glass: bool = False


@dataclass(frozen=True)
class Waiting:
    """Another run on this machine is redeeming the same code; this one waits for it."""


RedeemEvent = Unlocked | Preview | Progress | Stored | Waiting
# Asked with the preview, while the download goes on; True (or a `Filing`) lets the study be
# stored, a `Filing` under the local record it names.
Confirm = Callable[[Preview], Awaitable[bool | Filing]]


def parse_secret(text: str) -> RedemptionCode | Capability:
    """A QR capability (TR1:...) or a typed code; raises the parse error a nurse can act on
    (`AuthorizationLinkGiven` for the family's authorization link, scanned by mistake;
    `WebAddressGiven` for any other web address; `ScannedGarbled` for text too long to be a
    code without a QR's ':')."""
    cleaned = text.strip()
    if not cleaned:
        raise errors.NoSecretGiven()
    if is_authorization_link(cleaned):  # the ER screen's other QR, scanned by mistake
        raise errors.AuthorizationLinkGiven()
    if _is_web_address(cleaned):  # some other QR (a web page's), or an address pasted
        raise errors.WebAddressGiven()
    if looks_like_code(cleaned):
        return RedemptionCode.parse(cleaned)
    if ":" not in cleaned and symbol_count(cleaned) > 2 * CODE_LENGTH:
        raise errors.ScannedGarbled()  # too long to be typed: a QR its ':' garbled by a scanner
    if cleaned.upper().startswith("TR"):
        return Capability.parse(cleaned)
    # A colon without "TR": the code parser names the first character or the count that is
    # wrong, which helps more than "not a transfer QR".
    return RedemptionCode.parse(cleaned)


def _is_web_address(text: str) -> bool:
    """Whether `text` is an http or https address with a host, in any letter case."""
    try:
        parts = urlsplit(text)
    except ValueError:  # such as an unclosed "[" of an IPv6 address
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def check_destination(req: RedeemRequest) -> None:
    """Raises `PacsUnreachable` (`StowUnreachable` for the STOW-RS server), `QueriesRefused`
    (the identity check could not ask the PACS) or `FolderUnusable` if the study could not be
    delivered. Blocks: call it from a thread (`asyncio.to_thread`)."""
    if req.pacs is not None:
        pacs.check_pacs(req.pacs)
        if not req.skip_identity_check or req.local_patient_id is not None:
            identity.probe(req.pacs)
        if req.stow is not None:
            asyncio.run(stow.check_stow(req.stow))
    else:
        folder_copy.check_folder(req.out or Path.cwd())


async def _post_redemption(client: RelayClient, body: dict[str, object]) -> dict[str, object]:
    """POST the redemption, asking again (same body, same redemption id) while the relay
    cannot be reached: if it had accepted the code, it answers the repeat the same way."""
    for delay in (*REDEEM_RETRY_DELAYS, None):
        try:
            return await client.redeem(body)
        except RelayUnreachable as e:
            if delay is None:
                facts = (
                    f"The relay at {client.base_url} did not answer the redemption "
                    f"({len(REDEEM_RETRY_DELAYS) + 1} tries). If it accepted the code, nothing "
                    "is lost: this machine kept what it needs to ask again. Check the network, "
                    "then "
                )
                raise RelayUnreachable(
                    facts + "run the same command with the same code.",
                    e.reason,
                    console=facts + "enter the same code again.",
                ) from e
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # the loop returns or raises


async def _unlock(
    client: RelayClient, req: RedeemRequest, secret: RedemptionCode | Capability
) -> state.SavedKey:
    if isinstance(secret, Capability):
        slot = secret.transfer_id
        unlock = await asyncio.to_thread(stretch_capability, secret)
        body: dict[str, object] = {
            "transfer_id": secret.transfer_id,
            "proof": b64encode_text(unlock.proof),
        }
    else:
        slot = str(secret.locator)
        salt = await client.redemption_salt(secret.locator)
        unlock = await asyncio.to_thread(stretch_code, secret, salt)
        body = {"locator": secret.locator, "proof": b64encode_text(unlock.proof)}
    # Saved before it is sent: whatever happens to the answer, the redemption can be repeated.
    redemption_id = await asyncio.to_thread(state.redemption_id, req.state_dir, slot, req.relay)
    body["redemption_id"] = b64encode_text(redemption_id)
    answer = await _post_redemption(client, body)
    transfer_id = str(answer["transfer_id"])
    data_key = unwrap(b64decode_text(str(answer["wrapped_key"])), unlock, transfer_id)
    sender = answer["sender"]
    saved = state.SavedKey(
        transfer_id=transfer_id,
        relay=req.relay,
        data_key=data_key,
        sender=str(sender["display_name"]) if isinstance(sender, dict) else str(sender),
        break_glass=bool(answer["break_glass"]),
        pending=slot,
        consent_from_sending_site=answer.get("consent_from_sending_site") is True,
        code=state.code_digest(secret.compact()) if isinstance(secret, RedemptionCode) else "",
    )
    await asyncio.to_thread(state.save_key, req.state_dir, saved)
    return saved


async def _kept_for_qr(
    req: RedeemRequest, secret: RedemptionCode | Capability
) -> state.SavedKey | None:
    """The key this machine keeps for the transfer a QR names, when it redeemed that transfer
    already (with its typed code, or this QR): the run continues from it, as `--resume` would.
    Sent again, the QR would carry a new redemption id, which the relay refuses once the code
    has redeemed the transfer; a typed code names no transfer, so it is sent again instead
    (with its saved id, which the relay repeats)."""
    if not isinstance(secret, Capability):
        return None
    return await asyncio.to_thread(state.key_of_slot, req.state_dir, secret.transfer_id, req.relay)


async def _delivered_unrecorded(
    client: RelayClient, req: RedeemRequest, secret: RedemptionCode | Capability
) -> state.SavedKey | None:
    """This machine's key for `secret`, when the relay has the delivery receipt but this
    machine never had its answer (the relay died first, and stayed out of reach), so it did
    not record the delivery. The relay repeats a redemption only until delivery, so it would
    refuse the code now; the run continues from the saved key instead (as `--resume` would)."""
    slot = secret.transfer_id if isinstance(secret, Capability) else str(secret.locator)
    saved = await asyncio.to_thread(state.key_of_slot, req.state_dir, slot, req.relay)
    if saved is None:
        return None
    try:
        status = await client.status(saved.transfer_id)
    except RelayRefused:
        return None
    return saved if status.get("state") == "delivered" else None


def _to_resume(e: Exception, command: str) -> Exception:
    """`e` again (same type, so callers still tell failures apart), its sentence followed by
    how to continue now that the code is spent."""
    kept = "The code is used up, but this machine kept what it needs."
    if command.startswith("trauma-relay "):
        hint = f"{kept} Once this is resolved, continue with: {command}"
    else:  # the console's own words
        hint = f"{kept} {command}"
    if isinstance(e, errors.IdentityHeld) and e.hold is not None:
        return e  # `_held` wrote its message with every command to continue
    if not can_continue(e):
        return e  # continuing would stop here again: no "continue with" after it
    return _reworded(e, lambda message: f"{message} {hint}")


def can_continue(e: Exception) -> bool:
    """Whether continuing (`--resume`, the trauma console's Continue) can get further than `e`
    did: not once the study can never be whole or this machine keeps nothing of the transfer
    (`CannotContinue`), nor when the relay refuses the transfer for good (`GONE_AT_THE_RELAY`:
    its images are gone). Anything else (the PACS, the network, the disk, an image that failed
    verification and is downloaded again) may be cured, and continuing takes it from there."""
    if isinstance(e, errors.CannotContinue):
        return False
    return not (isinstance(e, RelayRefused) and e.code in GONE_AT_THE_RELAY)


def _reworded(e: Exception, say: Callable[[str], str]) -> Exception:
    """`e` again (same type, and the same hold), its sentence rewritten by `say`."""
    if isinstance(e, RelayRefused):
        return RelayRefused(e.status, e.code, say(e.detail), e.extra)
    if isinstance(e, RelayUnreachable):
        return RelayUnreachable(say(e.detail), e.reason, console=say(e.for_console))
    if isinstance(e, AgentError):  # a console's own words too, where they differ
        return type(e)(say(e.detail), console=say(e.for_console))
    if isinstance(e, errors.IdentityHeld):
        return type(e)(say(e.message), e.hold)
    if isinstance(e, errors.ReceivingError):
        return type(e)(say(e.message))
    reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    return errors.ReceivingError(say(f"This machine could not keep the study ({reason})."))


async def redeem(
    req: RedeemRequest,
    on_event: Callable[[RedeemEvent], None],
    confirm: Confirm | None = None,
) -> RedeemResult:
    """Redeem, verify and deliver, once this machine's other runs of the same code are done; if
    one of them delivered it, say so instead. With `confirm`, it is asked when the preview
    arrives, and nothing is stored unless it answers True, or a `Filing` naming the local
    record to file the study under (`NotConfirmed`; the transfer stays resumable)."""
    slot = req.resume and state.slot_of(req.state_dir, req.resume)
    typed = ""  # the typed code's digest (`state.Delivery.code`)
    if not slot:
        secret = parse_secret(req.secret or "")
        if isinstance(secret, Capability):
            # The QR of a transfer redeemed here with its typed code takes that code's turn.
            slot = state.slot_of(req.state_dir, secret.transfer_id)
        else:
            slot, typed = str(secret.locator), state.code_digest(secret.compact())
    async with turns.turn(req.state_dir, slot, lambda: on_event(Waiting())):
        done = state.delivery(req.state_dir, req.resume or slot)
        if done is not None and typed and done.code and done.code != typed:
            done = None  # another code, which the relay gave the same locator since
        if done is not None:
            return RedeemResult(
                done.transfer_id,
                done.instances,
                done.bytes,
                done.destination,
                done.break_glass,
                delivered_before=done.at,
            )
        return await _redeem(req, on_event, _Question(confirm))


async def _redeem(
    req: RedeemRequest, on_event: Callable[[RedeemEvent], None], question: _Question
) -> RedeemResult:
    async with RelayClient(req.relay, req.credential) as client:
        if req.resume:
            saved = state.load_key(req.state_dir, req.resume)
        else:
            secret = parse_secret(req.secret or "")
            try:
                await asyncio.to_thread(check_destination, req)
            except errors.ReceivingError as e:
                # The console (which says how to continue in its own words) has no command.
                again = (
                    "enter the same code again"
                    if req.how_to_continue
                    else "run the same command again"
                )
                raise type(e)(
                    f"{e.message} The code has not been used: once this is fixed, {again}."
                ) from e
            await client.health()
            saved = (
                await _kept_for_qr(req, secret)
                or await _delivered_unrecorded(client, req, secret)
                or await _unlock(client, req, secret)
            )
        on_event(
            Unlocked(
                saved.transfer_id,
                saved.sender,
                saved.break_glass,
                saved.consent_from_sending_site,
            )
        )
        try:
            if req.resume:
                await asyncio.to_thread(check_destination, req)
            result = await _receive(client, req, saved, on_event, question)
        except errors.NotConfirmed:
            raise
        except (errors.ReceivingError, AgentError, OSError) as e:
            how = req.how_to_continue or req.resume_command(saved.transfer_id)
            raise _to_resume(e, how) from e
        finally:
            question.close()
    if result.review_command:
        return result  # a review copy: the transfer stays open for the PACS
    # Delivered and acknowledged: the staged copies, the key and the redemption id are done.
    delivered = state.Delivery(
        result.transfer_id,
        result.instances,
        result.bytes,
        result.destination,
        result.break_glass,
        time.time(),
        saved.code,
    )
    names = {saved.transfer_id} | ({saved.pending} if saved.pending else set())
    await asyncio.to_thread(state.record_delivery, req.state_dir, names, delivered)
    await asyncio.to_thread(forget_transfer, req.state_dir, saved)
    return result


def forget_transfer(state_dir: Path, saved: state.SavedKey) -> None:
    """Remove what this machine keeps of `saved`'s transfer: the staged images, the key (with
    its hold) and the redemption id. Once delivered; or when a person discards a held study."""
    shutil.rmtree(state.folder(state_dir) / saved.transfer_id, ignore_errors=True)
    state.forget_key(state_dir, saved.transfer_id)
    state.forget_pending(state_dir, saved.pending)


def _staging_folder(req: RedeemRequest, transfer_id: str) -> Path:
    return state.folder(req.state_dir) / transfer_id


class _Question:
    """The confirmation asked when the preview arrives, answered while the download goes on."""

    def __init__(self, confirm: Confirm | None) -> None:
        self._confirm = confirm
        self._task: asyncio.Future[bool | Filing] | None = None

    def ask(self, preview: Preview) -> None:
        if self._confirm is not None and self._task is None:
            self._task = asyncio.ensure_future(self._confirm(preview))

    def declined(self) -> bool:
        """True once the answer is a no."""
        task = self._task
        return bool(task and task.done() and not task.cancelled() and task.result() is False)

    async def answer(self) -> bool | Filing:
        return True if self._task is None else await self._task

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


def _declined(req: RedeemRequest, transfer_id: str) -> errors.NotConfirmed:
    return errors.NotConfirmed(
        "Nothing was stored: the study was not confirmed. If it is not your patient, call the "
        "sending hospital. The code is used up, but this machine kept what it needs: to store "
        f"the study after all, run: {req.resume_command(transfer_id)}"
    )


async def _receive(
    client: RelayClient,
    req: RedeemRequest,
    saved: state.SavedKey,
    on_event: Callable[[RedeemEvent], None],
    question: _Question,
) -> RedeemResult:
    """Stage and verify every object, deliver once `question` says yes, post the receipt.
    With `req.as_they_arrive`, each object is stored (C-STORE, or STOW-RS with `req.stow`) as
    soon as it is verified (`as_they_arrive`), once the question is answered and the patient
    reconciled."""
    transfer_id, data_key = saved.transfer_id, saved.data_key
    folder = _staging_folder(req, transfer_id)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    reader = ManifestReader(data_key, transfer_id)
    staged: dict[int, staging.StagedObject] = {}
    checked: dict[int, tuple[StudySummary, staging.Checked]] = {}
    next_seq = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + req.give_up_after
    limit = asyncio.Semaphore(PARALLEL_DOWNLOADS)
    arriving: as_they_arrive.StoringAsTheyArrive[_Reconciled] | None = None

    # The images the PACS has accepted, told from the C-STORE threads: the latest, once a wake-up.
    accepted = stored_count.StoredCount(
        loop, lambda done, total: on_event(Stored(done, max(total, len(reader.entries))))
    )
    stored = accepted.put

    async def stage(batch: list[ManifestEntry]) -> None:
        async with limit:
            if question.declined():  # a no stops the download too
                raise _declined(req, transfer_id)
            items = await batch_staging.stage_batch(client, transfer_id, data_key, batch, folder)
        for item in items:
            await staged_one(item)

    async def staged_one(item: staging.StagedObject) -> None:
        entry = item.entry
        if arriving is not None:
            await arriving.add(item)
        elif reader.summary is not None:
            # Checked now, while the others download; told in order once all are staged.
            summary = reader.summary
            keep = req.pacs is None  # the folder copy lays the images out by their headers
            found = await asyncio.to_thread(staging.check_early, item, summary, keep_header=keep)
            checked[entry.index] = (summary, found)
        staged[entry.index] = item
        on_event(Progress(len(staged), len(reader.entries), reader.closed, item))

    try:
        while True:
            if question.declined():
                raise _declined(req, transfer_id)
            page = await client.manifest_page(transfer_id, next_seq, WAIT_SECONDS)
            had_summary = reader.summary is not None
            for item in page["records"]:
                reader.add(int(item["seq"]), b64decode_text(str(item["record"])))
                next_seq = int(item["seq"]) + 1
            if reader.summary is not None and not had_summary:
                preview = Preview(reader.summary, saved.sender, saved.break_glass)
                on_event(preview)
                question.ask(preview)
                if req.as_they_arrive and req.pacs is not None:
                    arriving = as_they_arrive.StoringAsTheyArrive(
                        reader.summary,
                        _open_pacs(req, req.pacs, reader.summary, saved, question, stored),
                        functools.partial(_check_study, req.pacs, reader.summary, saved),
                    )
            new = [entry for index, entry in sorted(reader.entries.items()) if index not in staged]
            tasks = [
                asyncio.create_task(stage(batch))
                for batch in batch_staging.batches(new, PARALLEL_DOWNLOADS)
            ]
            try:
                await asyncio.gather(*tasks)
            finally:  # the first failure stops the others
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            if arriving is not None:
                arriving.raise_if_failed()
            if reader.closed:
                break
            if page["closed"] and not page["records"]:
                # The relay says the sender closed the manifest, yet no closing record
                # authenticates: records were dropped.
                raise errors.VerificationFailed(
                    "The transfer's list of images is cut short (its closing record is "
                    "missing). Nothing was stored in the PACS. Call the sending hospital."
                )
            if loop.time() > deadline:
                raise errors.UploadUnfinished(
                    f"The sending hospital has not finished uploading ({len(staged)} images "
                    "verified so far); nothing was stored."
                )
        missing = reader.missing(set(staged))
        if missing:
            raise errors.VerificationFailed(
                f"{len(missing)} images listed in the manifest are missing. Nothing was "
                "stored in the PACS. Call the sending hospital."
            )
        if reader.incomplete:
            raise errors.StudyIncomplete(
                "The sending hospital stopped sending this study before all of it had arrived "
                f"(only {len(staged)} images came), so it is incomplete. Nothing was stored. "
                "Call the sending hospital: they can send the whole study again with a new code."
            )
    except ManifestError as e:
        failure: Exception = errors.VerificationFailed(
            f"The transfer's manifest failed verification ({e}). Nothing was stored in the "
            "PACS. Call the sending hospital."
        )
        if arriving is None:
            raise failure from e
        raise await _stopped(req, saved, arriving, failure, len(reader.entries)) from e
    except Exception as e:
        if arriving is None:
            raise
        raise await _stopped(req, saved, arriving, e, len(reader.entries)) from e
    except BaseException:  # cancelled: the C-STORE threads must end too
        if arriving is not None:
            arriving.stop()
        raise
    items = [staged[i] for i in sorted(staged)]
    summary = reader.summary
    if summary is None:
        raise errors.VerificationFailed("The transfer's manifest has no summary.")
    headers: dict[int, Dataset] = {}
    if arriving is None:
        early = {i: found for i, (against, found) in checked.items() if against is summary}
        try:
            headers = await asyncio.to_thread(
                staging.check_identity, items, summary, early, keep_headers=req.pacs is None
            )
        except errors.IdentityMismatch as e:
            await _remember(req, saved, summary, hold_record.Reason.MIXED_PATIENTS, e.message)
            raise
        answer = await question.answer()
        if answer is False:
            raise _declined(req, transfer_id)
        if isinstance(answer, Filing):
            req = answer.applied_to(req)

    filed_under = None
    review_command = ""
    if arriving is not None:
        try:
            delivery, reconciled = await arriving.finish()
        except Exception as e:
            raise await _stopped(req, saved, arriving, e, len(items)) from e
        except BaseException:
            arriving.stop()
            raise
        filed_under = reconciled.filed_under
        count, decompressed, note = delivery.stored, delivery.decompressed_images, delivery.note
        destination, kind = str(req.stow or req.pacs), "pacs"
    elif req.pacs is not None:
        try:
            if req.stow is None:
                delivery, filed_under = await asyncio.to_thread(
                    _deliver_to_pacs, req, req.pacs, items, summary, saved, stored
                )
            else:
                coercion = await asyncio.to_thread(
                    _reconciled, req, req.pacs, items, summary, saved
                )
                stored(0, len(items))
                delivery = await stow.store_to_stow(items, req.stow, coercion, stored)
                filed_under = coercion.local if coercion else None
        except (errors.IdentityHeld, errors.PacsRefused) as e:
            # A refusal midway leaves the images it accepted before in the PACS: counted.
            in_pacs = accepted.reached
            stopped: Exception = await _hold(req, req.pacs, saved, summary, e, in_pacs)
            if in_pacs:
                stopped = _reworded(
                    stopped,
                    lambda message: as_they_arrive.incomplete_in_pacs(message, in_pacs, len(items)),
                )
            raise stopped from e
        count, decompressed, note = delivery.stored, delivery.decompressed_images, delivery.note
        destination = str(req.stow or req.pacs)
        kind = "pacs"
    else:
        target = (req.out or Path.cwd()) / transfer_id
        held = await asyncio.to_thread(state.held_for, req.state_dir, transfer_id)
        # A review copy keeps its staged images for the PACS; a delivery removes them next,
        # so they may be moved into the folder instead of copied.
        copy = await asyncio.to_thread(
            functools.partial(folder_copy.store_to_folder, keep_staged=held is not None),
            items,
            target,
            headers,
        )
        count, decompressed, note = copy.stored, 0, copy.note
        destination = str(target)
        kind = "folder"
        if held is not None:  # a person reviews a held study: not delivered yet
            kind = "review"
            review_command = _import_command(req, transfer_id, held)
    total = sum(i.entry.size for i in items)
    # Asked again while the relay is briefly out of reach (a restart): it accepts a repeat.
    await retry.retrying(
        functools.partial(
            client.receipt,
            transfer_id,
            {
                "instances": count,
                "bytes": total,
                "destination": kind,
                "complete": True,
                "decompressed": decompressed,
                "reconciled": filed_under is not None,
            },
        )
    )
    return RedeemResult(
        transfer_id,
        count,
        total,
        destination,
        saved.break_glass,
        decompressed,
        note,
        filed_under,
        review_command=review_command,
    )


async def _hold(
    req: RedeemRequest,
    address: pacs.PacsAddress,
    saved: state.SavedKey,
    summary: StudySummary,
    e: errors.IdentityHeld | errors.PacsRefused,
    stored: int = 0,
) -> errors.ReceivingError:
    """`e` once the study is remembered as held (with the `stored` images the PACS already
    has of it): an identity hold with both sides and every command (`_held`), or the PACS's
    refusal."""
    if isinstance(e, errors.IdentityHeld):
        if e.hold is None:
            return e
        return await _held(req, address, saved, summary, e.hold, stored, held_as=type(e))
    refused_by = state.HeldFor(str(address), address.calling_ae_title)
    await asyncio.to_thread(state.mark_held, req.state_dir, saved.transfer_id, refused_by)
    reason = hold_record.Reason.PACS_REFUSED
    await _remember(req, saved, summary, reason, e.message, stored_in_pacs=stored)
    return e


@dataclass(frozen=True)
class _Reconciled:
    """What storing as the images arrive was opened with: the request with the staff's answer
    applied, the coercion and the local record it files under."""

    req: RedeemRequest
    coercion: reconcile.Coercion | None

    @property
    def filed_under(self) -> reconcile.Demographics | None:
        return self.coercion.local if self.coercion else None


async def _open_pacs(
    req: RedeemRequest,
    address: pacs.PacsAddress,
    summary: StudySummary,
    saved: state.SavedKey,
    question: _Question,
    on_stored: Callable[[int, int], None],
) -> as_they_arrive.Opened[_Reconciled]:
    """Once the question is answered: reconcile from the summary (`_reconciled`, its study UID)
    and open the store (STOW-RS with `req.stow`, else C-STORE). Raises `NotConfirmed`,
    `IdentityHeld`."""
    answer = await question.answer()
    if answer is False:
        raise _declined(req, saved.transfer_id)
    if isinstance(answer, Filing):
        req = answer.applied_to(req)
    coercion = await asyncio.to_thread(_reconciled, req, address, [], summary, saved)
    store: pacs.StoreAsVerified | stow.StowAsVerified
    if req.stow is not None:
        store = stow.StowAsVerified(req.stow, coercion, on_stored, summary.instance_count)
    else:
        store = pacs.StoreAsVerified(address, coercion, on_stored, req.associations)
    on_stored(0, summary.instance_count)  # storing begins (the count grows with the manifest)
    return as_they_arrive.Opened(store, _Reconciled(req, coercion))


async def _check_study(
    address: pacs.PacsAddress,
    summary: StudySummary,
    saved: state.SavedKey,
    reconciled: _Reconciled,
    item: staging.StagedObject,
) -> None:
    """Check an image whose study UID is not the summary's before it is stored
    (`_reconciled` again, with the request the store was opened with). Raises
    `IdentityHeld`."""
    await asyncio.to_thread(_reconciled, reconciled.req, address, [item], summary, saved)


async def _stopped(
    req: RedeemRequest,
    saved: state.SavedKey,
    arriving: as_they_arrive.StoringAsTheyArrive[_Reconciled],
    e: Exception,
    listed: int,
) -> Exception:
    """Storing as the images arrive ended badly: stop it, remember the hold as the default
    mode does, and return `e` saying how many images the PACS already has."""
    stored = await arriving.abort()
    summary = arriving.summary
    if isinstance(e, errors.IdentityHeld | errors.PacsRefused) and req.pacs is not None:
        opened = arriving.context  # None: the opening itself failed
        e = await _hold(req if opened is None else opened.req, req.pacs, saved, summary, e, stored)
    if stored:
        e = _reworded(e, lambda message: as_they_arrive.incomplete_in_pacs(message, stored, listed))
    if isinstance(e, errors.IdentityMismatch):
        reason = hold_record.Reason.MIXED_PATIENTS
        await _remember(req, saved, summary, reason, e.message, stored_in_pacs=stored)
    return e


def _import_command(req: RedeemRequest, transfer_id: str, held: state.HeldFor) -> str:
    """The command that imports a review copy into the PACS that held it."""
    address = pacs.PacsAddress.parse(held.pacs)
    address = replace(address, calling_ae_title=held.calling_ae_title)
    return replace(req, pacs=address, out=None).resume_command(transfer_id)


def _deliver_to_pacs(
    req: RedeemRequest,
    address: pacs.PacsAddress,
    items: list[staging.StagedObject],
    summary: StudySummary,
    saved: state.SavedKey,
    on_stored: Callable[[int, int], None],
) -> tuple[pacs.PacsDelivery, reconcile.Demographics | None]:
    """Reconcile the patient (`_reconciled`) and C-STORE; returns what was stored and the
    local record it was filed under (None when not reconciled)."""
    coercion = _reconciled(req, address, items, summary, saved)
    on_stored(0, len(items))  # storing begins: a PACS that never answers shows as such
    delivery = pacs.store_to_pacs(items, address, coercion, on_stored, req.associations)
    return delivery, coercion.local if coercion else None


def _reconciled(
    req: RedeemRequest,
    address: pacs.PacsAddress,
    items: list[staging.StagedObject],
    summary: StudySummary,
    saved: state.SavedKey,
) -> reconcile.Coercion | None:
    """Reconcile the patient (a local record number, when staff gave one) and check the PACS
    for conflicts unless a person reviewed a hold, whichever way the images then go; returns
    the coercion to apply (None when not reconciled). Raises `IdentityHeld`."""
    patient = identity.Patient(summary.patient_id, summary.patient_name, summary.patient_birth_date)
    coercion = None
    if req.local_patient_id is not None:
        outside = reconcile.Demographics(
            summary.patient_id,
            summary.issuer_of_patient_id,
            summary.patient_name,
            summary.patient_birth_date,
        )
        record = identity.find_patient(address, req.local_patient_id, req.local_issuer)
        local = reconcile.local_identity(
            req.local_patient_id,
            req.local_issuer,
            outside,
            record,
            confirmed=req.confirm_local_record,
            new_patient=req.new_local_patient,
        )
        patient = identity.Patient(local.patient_id, local.patient_name, local.birth_date)
        coercion = reconcile.Coercion(
            local,
            datetime.now(UTC),
            f"trauma-relay as {address.calling_ae_title}",
            saved.sender,
        )
    if not req.skip_identity_check:
        uids = {summary.study_instance_uid, *(i.entry.study_instance_uid for i in items)}
        identity.check_pacs_identity(address, patient, sorted(uids - {""}))
    return coercion


async def _held(
    req: RedeemRequest,
    address: pacs.PacsAddress,
    saved: state.SavedKey,
    summary: StudySummary,
    hold: holds.Hold,
    stored: int = 0,
    *,
    held_as: type[errors.IdentityHeld] = errors.IdentityHeld,
) -> errors.IdentityHeld:
    """Remember that `address` held the study (a folder copy is then a review copy), with the
    `stored` images the PACS already has of it, and return the hold (as `held_as`: the type
    of the hold found, such as `IdentityNotChecked`) with both sides and every command to
    continue, the safest first."""
    held = state.HeldFor(str(address), address.calling_ae_title)
    await asyncio.to_thread(state.mark_held, req.state_dir, saved.transfer_id, held)
    reason = hold_record.Reason.of(hold.kind)
    sentence = f"{hold.reason}."
    await _remember(
        req, saved, summary, reason, sentence, hold.pacs, hold.skippable, stored_in_pacs=stored
    )
    plain = replace(
        req, skip_identity_check=False, confirm_local_record=False, new_local_patient=False
    )
    mrn = req.local_patient_id or summary.patient_id
    commands = holds.Commands(
        again=req.resume_command(saved.transfer_id),
        confirm=replace(plain, local_patient_id=mrn, confirm_local_record=True).resume_command(
            saved.transfer_id
        ),
        other_record=replace(plain, local_patient_id="MRN").resume_command(saved.transfer_id),
        new_patient=replace(plain, new_local_patient=True).resume_command(saved.transfer_id),
        review=replace(req, pacs=None, out=req.out or Path.cwd()).resume_command(saved.transfer_id),
        skip=replace(req, skip_identity_check=True).resume_command(saved.transfer_id),
    )
    incoming = holds.Person(
        summary.patient_id,
        summary.patient_name,
        summary.patient_birth_date,
        summary.patient_sex,
    )
    message = holds.explain(hold, incoming, saved.sender, commands)
    return held_as(message, hold)


async def _remember(
    req: RedeemRequest,
    saved: state.SavedKey,
    summary: StudySummary,
    reason: hold_record.Reason,
    sentence: str,
    theirs: holds.Person | None = None,
    skippable: bool = False,
    *,
    stored_in_pacs: int = 0,
) -> None:
    """Keep why the study is held beside its key, for the holds queue, with the images the
    PACS has of it: `stored_in_pacs` now, or more by an earlier run held before (they are
    still there; nothing here removes them)."""
    earlier = await asyncio.to_thread(hold_record.load, req.state_dir, saved.transfer_id)
    if earlier is not None:
        stored_in_pacs = max(stored_in_pacs, earlier.stored_in_pacs)
    held = hold_record.HeldStudy(
        transfer_id=saved.transfer_id,
        reason=reason,
        sentence=sentence,
        skippable=skippable,
        pacs="" if req.pacs is None else str(req.pacs),
        calling_ae_title=pacs.DEFAULT_CALLING_AE_TITLE
        if req.pacs is None
        else req.pacs.calling_ae_title,
        sender=saved.sender,
        break_glass=saved.break_glass,
        ours=holds.Person(
            summary.patient_id,
            summary.patient_name,
            summary.patient_birth_date,
            summary.patient_sex,
        ),
        theirs=theirs,
        study=" ".join(
            part for part in (summary.study_description, shown_date(summary.study_date)) if part
        ),
        image_count=summary.instance_count,
        local_patient_id=req.local_patient_id,
        local_issuer=req.local_issuer,
        at=time.time(),
        confirm_local_record=req.confirm_local_record,
        new_local_patient=req.new_local_patient,
        stored_in_pacs=stored_in_pacs,
    )
    await asyncio.to_thread(hold_record.save, req.state_dir, held)
