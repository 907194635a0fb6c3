"""The holds queue: every study held on this machine (`hold_record`), and what a person may do
about each, the same choices the command line prints after a hold (`holds.explain`), carried
out by the same function (`redeem.redeem`, resuming the transfer with the options that choice
adds) so that the console and the command line cannot drift apart.

Each decision goes into the agent's audit log (`site_agent.audit`): who decided what, about
which transfer, when, from where, and whether it worked.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from receiving_site import errors, hold_record, pacs, state, stow, turns
from receiving_site.hold_record import HeldStudy, Reason, Resolved
from receiving_site.redeem import RedeemRequest, RedeemResult, forget_transfer, redeem
from receiving_site.settings import ReceiverSettings
from receiving_site.stow import StowDestination
from site_agent.audit import AuditLog
from site_agent.client import RelayClient
from site_agent.errors import AgentError
from transfer_codes.wire import DISCARDED


class Choice(enum.Enum):
    """What a person may decide about a held study (the value is its audit action)."""

    TRY_AGAIN = "hold-try-again"
    CONFIRM_LOCAL_RECORD = "hold-confirm-local-record"
    OTHER_RECORD = "hold-other-record"
    NEW_LOCAL_PATIENT = "hold-new-local-patient"
    SAVE_TO_FOLDER = "hold-save-to-folder"
    STORE_ANYWAY = "hold-store-anyway"
    DISCARD = "hold-discard"


def choices(held: HeldStudy) -> list[Choice]:
    """The choices for `held`, the safest first, as the command line lists them; discarding
    last. Mixed patients can only be discarded: their images go on no record."""
    reason = held.reason
    if reason is Reason.MIXED_PATIENTS:
        return [Choice.DISCARD]
    found: list[Choice] = []
    if reason in (Reason.UNCHECKED, Reason.PACS_REFUSED):
        found.append(Choice.TRY_AGAIN)
    if reason in (Reason.PATIENT_ID, Reason.LOCAL_RECORD):
        found.append(Choice.CONFIRM_LOCAL_RECORD)
    if reason is Reason.NEW_LOCAL:
        found.append(Choice.NEW_LOCAL_PATIENT)
    if reason in (Reason.PATIENT_ID, Reason.LOCAL_RECORD, Reason.NEW_LOCAL):
        found.append(Choice.OTHER_RECORD)
    found.append(Choice.SAVE_TO_FOLDER)
    if held.skippable:
        found.append(Choice.STORE_ANYWAY)
    found.append(Choice.DISCARD)
    return found


@dataclass(frozen=True)
class Decision:
    """A person's choice, with what it needs: the local record number (and its issuer) for
    `OTHER_RECORD` and `NEW_LOCAL_PATIENT`, the folder for `SAVE_TO_FOLDER`."""

    choice: Choice
    local_patient_id: str = ""
    local_issuer: str = ""
    folder: Path | None = None


@dataclass(frozen=True)
class Place:
    """Where this machine keeps its state, how it reaches the relay, and how the receiving
    agent's settings say to store into the PACS (`stow`, `associations`, `as_they_arrive`),
    which a resolution stores with as the agent's imports do.

    `stow` is the STOW-RS service of one PACS, the one the settings name (`stow_pacs`,
    AET@HOST:PORT): a study held by a run that checked and stored into another PACS
    (`redeem --pacs` given something else) is stored there by C-STORE, never into this one's
    STOW-RS service, whose PACS its patient was not checked against."""

    state_dir: Path
    credential: str
    stow: StowDestination | None = None  # store over STOW-RS there instead of C-STORE
    associations: int = pacs.DEFAULT_ASSOCIATIONS  # C-STORE associations at once
    as_they_arrive: bool = False  # store each image once verified, not once all are
    stow_pacs: str = ""  # the PACS whose STOW-RS service `stow` is (AET@HOST:PORT)

    @classmethod
    def of(cls, settings: ReceiverSettings, credential: str) -> Place:
        """The place the receiving agent's `settings` describe. Without a PACS in them
        (`pacs.host`), `stow.url` is nobody's STOW-RS service: held studies store by C-STORE
        into the PACS that held them."""
        configured = settings.pacs
        named = configured.host and pacs.PacsAddress(
            configured.ae_title, configured.host, configured.port
        )
        return cls(
            settings.state.folder,
            credential,
            stow=stow.from_settings(settings.stow),
            associations=configured.associations,
            as_they_arrive=configured.as_they_arrive,
            stow_pacs=str(named) if named else "",
        )

    def stow_into(self, address: pacs.PacsAddress) -> StowDestination | None:
        """The STOW-RS service to store into `address` with, if the settings name one for it."""
        return self.stow if str(address) == self.stow_pacs else None


@dataclass(frozen=True)
class Decided:
    """What a decision did: `result` of the redemption it resumed (None for a discard)."""

    held: HeldStudy
    decision: Decision
    result: RedeemResult | None
    # A discard: whether the relay was told, so the ER's console and the family's phone say
    # it was discarded (False: no credential here, or the relay out of reach or refusing).
    sender_told: bool = False


def request(held: HeldStudy, decision: Decision, place: Place, relay: str) -> RedeemRequest:
    """The redemption that carries out `decision`: the one that held the study, resumed, with
    the options the command line's matching command adds. Raises `HoldChoiceRefused` for a
    choice `held` does not offer, or one missing what it needs."""
    choice = decision.choice
    if choice not in choices(held) or choice is Choice.DISCARD:
        raise errors.HoldChoiceRefused()
    address = None
    if held.pacs:
        parsed = pacs.PacsAddress.parse(held.pacs)
        address = replace(parsed, calling_ae_title=held.calling_ae_title)
    # What staff had already checked about the local record goes with it: without it, storing
    # a study held for another reason would hold it again for the record ("no images for
    # patient ... yet"), and resolving that would bring back the first reason.
    again = RedeemRequest(
        relay=relay,
        credential=place.credential,
        state_dir=place.state_dir,
        resume=held.transfer_id,
        pacs=address,
        local_patient_id=held.local_patient_id,
        local_issuer=held.local_issuer,
        confirm_local_record=held.confirm_local_record and held.local_patient_id is not None,
        new_local_patient=held.new_local_patient and held.local_patient_id is not None,
        assume_yes=True,
        stow=None if address is None else place.stow_into(address),
        associations=place.associations,
        as_they_arrive=place.as_they_arrive,
    )
    if choice is Choice.TRY_AGAIN:
        return again
    if choice is Choice.STORE_ANYWAY:
        return replace(again, skip_identity_check=True)
    if choice is Choice.CONFIRM_LOCAL_RECORD:
        mrn = held.local_patient_id or held.ours.patient_id
        return replace(again, local_patient_id=mrn, confirm_local_record=True)
    if choice in (Choice.OTHER_RECORD, Choice.NEW_LOCAL_PATIENT):
        mrn = decision.local_patient_id.strip() or (held.local_patient_id or "")
        if not mrn:
            raise errors.HoldChoiceRefused(
                "Type the patient's record number here first. Nothing was done."
            )
        issuer = decision.local_issuer.strip() or held.local_issuer
        same = (mrn, issuer) == (held.local_patient_id, held.local_issuer)
        return replace(
            again,
            local_patient_id=mrn,
            local_issuer=issuer,
            # What was checked about another record says nothing about this one.
            confirm_local_record=same and again.confirm_local_record,
            new_local_patient=choice is Choice.NEW_LOCAL_PATIENT
            or (same and again.new_local_patient),
        )
    if decision.folder is None:
        raise errors.HoldChoiceRefused("Give the folder to save the images in. Nothing was done.")
    return replace(
        again,
        pacs=None,
        stow=None,
        out=decision.folder,
        local_patient_id=None,
        confirm_local_record=False,
        new_local_patient=False,
    )


async def _tell_sender(place: Place, saved: state.SavedKey, held: HeldStudy) -> bool:
    """Report the discard to the relay (counts only: how many images the PACS had stored as
    they arrived), so the ER's console and the family's phone say so. False when it cannot be
    told; the discard goes on all the same (the page then says to call the ER)."""
    if not place.credential:
        return False
    body: dict[str, object] = {
        "instances": held.stored_in_pacs,
        "bytes": 0,
        "destination": DISCARDED,
        "complete": False,
    }
    try:
        async with RelayClient(saved.relay, place.credential) as client:
            await client.receipt(saved.transfer_id, body)
    except AgentError:
        return False
    return True


@dataclass(frozen=True)
class _Discarded:
    """A discard done: the hold as it stood then, and whether the relay was told."""

    held: HeldStudy
    sender_told: bool


def _keep_resolved(place: Place, resolved: Resolved) -> None:
    """Keep what ended the hold (`hold_record.Resolved`). The decision is done by then: a
    disk that refuses this small file only leaves a later page unable to say who decided."""
    with contextlib.suppress(OSError):
        hold_record.save_resolved(place.state_dir, resolved)


async def _discard(
    place: Place, held: HeldStudy, resolution: Callable[[int], Resolved]
) -> _Discarded:
    """Forget the transfer, in turn with any redemption of it on this machine (a second click,
    another nurse): `HoldNotFound` if that one resolved it first; its `resolution` is kept
    in the same turn, so that a click after it finds what was done. Then tell the relay what
    the hold says then (a run before this one may have stored more images)."""
    slot = await asyncio.to_thread(state.slot_of, place.state_dir, held.transfer_id)
    async with turns.turn(place.state_dir, slot, lambda: None):
        now = await asyncio.to_thread(hold_record.load, place.state_dir, held.transfer_id)
        if now is None:
            raise errors.HoldNotFound()
        saved = await asyncio.to_thread(state.load_key, place.state_dir, held.transfer_id)
        # Forgotten here first: that is the decision; telling the relay is a courtesy to the ER
        # that may fail (the page then says to call them).
        await asyncio.to_thread(forget_transfer, place.state_dir, saved)
        await asyncio.to_thread(_keep_resolved, place, resolution(0))
    return _Discarded(now, await _tell_sender(place, saved, now))


async def _carry_out(
    place: Place, held: HeldStudy, decision: Decision, resolution: Callable[[int], Resolved]
) -> RedeemResult | _Discarded:
    """What the redemption a resolution resumed did, or what a discard did; its `resolution`
    (given how many images were stored) is kept once the hold is gone."""
    if decision.choice is Choice.DISCARD:
        return await _discard(place, held, resolution)
    saved = await asyncio.to_thread(state.load_key, place.state_dir, held.transfer_id)
    req = request(held, decision, place, saved.relay)
    try:
        result = await redeem(req, lambda _event: None)
    except errors.IdentityHeld as e:
        reason = e.hold.reason if e.hold is not None else e.message.rstrip(".")
        raise errors.HeldAgain(
            f"{reason}. The study is held again for review; nothing was stored.", e.hold
        ) from e
    if result.delivered_before is not None:
        raise errors.HoldNotFound()  # another decision, taken first, delivered it
    if result.review_command:
        await asyncio.to_thread(
            hold_record.save, place.state_dir, replace(held, review_copy=result.destination)
        )
    else:
        await asyncio.to_thread(_keep_resolved, place, resolution(result.instances))
    return result


async def decide(
    place: Place,
    transfer_id: str,
    decision: Decision,
    *,
    audit: AuditLog,
    who: str,
    where: str,
    clock: Callable[[], float] = time.time,
) -> Decided:
    """Carry out `decision` about the study held as `transfer_id`, and record it in `audit`
    (with its outcome, also when it fails). A decision that ends the hold (stored, discarded)
    is kept as `hold_record.Resolved`, by `who`, at `clock()` once done (seconds since the
    epoch). Raises `HoldNotFound` if it is no longer held, `HoldChoiceRefused`, `HeldAgain` (a
    new hold, kept in the queue), or what the redemption raises (`ReceivingError`,
    `AgentError`)."""
    held = await asyncio.to_thread(hold_record.load, place.state_dir, transfer_id)
    if held is None:
        raise errors.HoldNotFound()
    decided: dict[str, object] = {}
    if decision.choice in (Choice.OTHER_RECORD, Choice.NEW_LOCAL_PATIENT):
        decided["local_patient_id"] = decision.local_patient_id or held.local_patient_id
    if decision.folder is not None:
        decided["folder"] = str(decision.folder)

    async def record(outcome: str, **more: object) -> None:
        await audit.arecord(
            decision.choice.value,
            who=who,
            where=where,
            outcome=outcome,
            transfer_id=transfer_id,
            reason=held.reason.name,
            decided=decided,
            **more,
        )

    def resolution(instances: int) -> Resolved:
        return Resolved(transfer_id, decision.choice.value, who, clock(), instances)

    try:
        result = await _carry_out(place, held, decision, resolution)
    except (errors.ReceivingError, AgentError) as e:
        await record("failure", why=e.message if isinstance(e, errors.ReceivingError) else e.detail)
        raise
    if isinstance(result, _Discarded):
        await record("success", sender_told=result.sender_told)
        return Decided(result.held, decision, None, sender_told=result.sender_told)
    await record("success", instances=result.instances, destination=result.destination)
    return Decided(held, decision, result)
