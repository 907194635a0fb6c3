"""What the trauma center keeps in its state folder (`<state>/receiving/`) between runs.

- `pending-<locator>.json` (a typed code) or `pending-<transfer id>.json` (a QR capability):
  the random redemption id for that code, written durably *before* the code is sent. If the
  relay's answer is lost, or this machine stops before saving the key, the same code sent
  again with the same id gets the same answer (the relay repeats the one redemption).
- `<transfer id>.json`: the unwrapped data key of a redeemed transfer, so that an interrupted
  run resumes (`--resume TRANSFER_ID`, or the same code again) without spending anything.
- `held-<transfer id>.json`: the PACS that held the study for review (identity check). A copy
  then saved with `--out` is a review copy: the transfer stays open for that PACS.
- `hold-<transfer id>.json`: why the study is held, for the holds queue (`hold_record`).

All four are removed once the study is delivered and the receipt sent; then
`delivered-<locator or transfer id>.json` records where it went (no patient data), so that
the same code, or `--resume`, run again on this machine says so. `lock-<slot>` files are
`turns`' locks. Every file is 0600 in a
0700 folder and written atomically (temporary file, fsync, rename, fsync of the folder): after
a crash a file is either absent or whole.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from receiving_site import errors
from site_agent.local_state import create_once, site_folder, write_atomically
from transfer_codes.tokens import is_transfer_id
from transfer_codes.wire import b64decode_text, b64encode_text

REDEMPTION_ID_BYTES = 32


@dataclass(frozen=True)
class SavedKey:
    """A redeemed transfer as this machine keeps it. `pending` names the redemption id file to
    remove with the key once the study is delivered."""

    transfer_id: str
    relay: str
    data_key: bytes
    sender: str
    break_glass: bool
    pending: str | None = None
    # The relay saw the patient's authorization come from the sending site's own address.
    consent_from_sending_site: bool = False
    code: str = ""  # `code_digest` of the typed code that redeemed it; empty for a QR


def folder(state_dir: Path) -> Path:
    return site_folder(state_dir, "receiving")


# -- redemption ids ------------------------------------------------------------------------------


def slot_file(kind: str, slot: str) -> str:
    """`<kind>-<slot>.json`, for `slot` a locator's digits or a transfer id (anything else is
    refused: the name must never come out of the state folder)."""
    if not (slot.isascii() and slot.isdigit()) and not is_transfer_id(slot):
        raise ValueError(f"not a locator or transfer id: {slot!r}")
    return f"{kind}-{slot}.json"


def pending_name(slot: str) -> str:
    """The file name for the redemption id of `slot` (a locator's digits or a transfer id)."""
    return slot_file("pending", slot)


def redemption_id(state_dir: Path, slot: str, relay: str) -> bytes:
    """The redemption id to send for `slot`: the one saved by an earlier run, or a new random
    one, saved durably before this returns (so before the code can be spent)."""
    path = folder(state_dir) / pending_name(slot)
    fresh = secrets.token_bytes(REDEMPTION_ID_BYTES)
    body = {"redemption_id": b64encode_text(fresh), "relay": relay}
    if create_once(path, json.dumps(body).encode()):
        return fresh
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        value = b64decode_text(str(saved["redemption_id"]))
    except (OSError, ValueError, KeyError, TypeError):
        value = b""
    if len(value) != REDEMPTION_ID_BYTES:  # unreadable: nothing can have been sent with it
        write_atomically(path, json.dumps(body).encode())
        return fresh
    return value


def forget_pending(state_dir: Path, slot: str | None) -> None:
    if slot is not None:
        (folder(state_dir) / pending_name(slot)).unlink(missing_ok=True)


# -- keys of redeemed transfers ------------------------------------------------------------------


def _key_path(state_dir: Path, transfer_id: str) -> Path:
    if not is_transfer_id(transfer_id):
        raise errors.ReceivingError(f"{transfer_id!r} is not a transfer id.")
    return folder(state_dir) / f"{transfer_id}.json"


def save_key(state_dir: Path, key: SavedKey) -> None:
    body = {
        "transfer_id": key.transfer_id,
        "relay": key.relay,
        "data_key": b64encode_text(key.data_key),
        "sender": key.sender,
        "break_glass": key.break_glass,
        "pending": key.pending,
        "consent_from_sending_site": key.consent_from_sending_site,
        "code": key.code,
    }
    write_atomically(_key_path(state_dir, key.transfer_id), json.dumps(body).encode())


def load_key(state_dir: Path, transfer_id: str) -> SavedKey:
    """The saved key of `transfer_id`; `NothingKept` if this machine has none."""
    path = _key_path(state_dir, transfer_id)
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise errors.NothingKept(
            f"This machine keeps nothing of transfer {transfer_id}: it was not redeemed here, "
            "or it was delivered or discarded from here since. If it was not redeemed here, "
            "use its code instead."
        ) from e
    pending = body.get("pending")
    return SavedKey(
        transfer_id=transfer_id,
        relay=str(body["relay"]),
        data_key=b64decode_text(body["data_key"]),
        sender=str(body["sender"]),
        break_glass=bool(body["break_glass"]),
        pending=str(pending) if pending is not None else None,
        consent_from_sending_site=body.get("consent_from_sending_site") is True,
        code=str(body.get("code", "")),
    )


def unfinished(state_dir: Path) -> list[str]:
    """The transfers this machine redeemed and has not delivered yet (their keys are kept),
    oldest first: what a restarted agent offers to continue."""
    found = []
    try:
        entries = list(folder(state_dir).iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        if path.suffix == ".json" and is_transfer_id(path.stem):
            try:
                found.append((path.stat().st_mtime, path.stem))
            except FileNotFoundError:
                continue  # delivered and forgotten since the folder was listed
    return [transfer_id for _, transfer_id in sorted(found)]


def key_of_slot(state_dir: Path, slot: str, relay: str) -> SavedKey | None:
    """The saved key of the transfer this machine redeemed from `relay` with the code or QR
    of `slot` (`pending`), if it keeps one. A QR's slot is its transfer id, which also names a
    transfer redeemed here with its typed code: that one's key is found too."""
    for transfer_id in unfinished(state_dir):
        try:
            saved = load_key(state_dir, transfer_id)
        except errors.NothingKept:
            continue  # delivered or discarded meanwhile, by another run: not this slot's
        if slot in (saved.pending, saved.transfer_id) and saved.relay == relay:
            return saved
    return None


def forget_key(state_dir: Path, transfer_id: str) -> None:
    _key_path(state_dir, transfer_id).unlink(missing_ok=True)
    _held_path(state_dir, transfer_id).unlink(missing_ok=True)
    _held_path(state_dir, transfer_id).with_name(f"hold-{transfer_id}.json").unlink(missing_ok=True)


def slot_of(state_dir: Path, transfer_id: str) -> str:
    """The code slot (`pending`) of a transfer this machine redeemed, else the transfer id.
    Raises `ReceivingError` if `transfer_id` is not one."""
    if not _key_path(state_dir, transfer_id).exists():
        return transfer_id
    return load_key(state_dir, transfer_id).pending or transfer_id


# -- holds for review ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldFor:
    """The PACS (AET@HOST:PORT) and our calling AE title of the run that held the study."""

    pacs: str
    calling_ae_title: str


def _held_path(state_dir: Path, transfer_id: str) -> Path:
    return _key_path(state_dir, transfer_id).with_name(f"held-{transfer_id}.json")


def mark_held(state_dir: Path, transfer_id: str, held: HeldFor) -> None:
    write_atomically(_held_path(state_dir, transfer_id), json.dumps(asdict(held)).encode())


def _read(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`; None if there is no such file."""
    try:
        body: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return body


def held_for(state_dir: Path, transfer_id: str) -> HeldFor | None:
    body = _read(_held_path(state_dir, transfer_id))
    return None if body is None else HeldFor(str(body["pacs"]), str(body["calling_ae_title"]))


# -- deliveries done -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """A study this machine delivered: where (PACS address or folder), how much, and when
    (seconds since the epoch). `code`: the SHA-256 of the typed code that redeemed it (its
    compact form), so that another code the relay later gives the same locator is not taken for
    it; empty for a QR, and in records written before."""

    transfer_id: str
    instances: int
    bytes: int
    destination: str
    break_glass: bool
    at: float
    code: str = ""


def code_digest(code: str) -> str:
    """What `Delivery.code` holds for a code given in its compact form."""
    return hashlib.sha256(code.encode("ascii")).hexdigest()


def _delivery_path(state_dir: Path, name: str) -> Path:
    return folder(state_dir) / slot_file("delivered", name)


def record_delivery(state_dir: Path, names: set[str], delivery: Delivery) -> None:
    """Record `delivery` under each of `names` (the code's slot and the transfer id)."""
    for name in sorted(names):
        write_atomically(_delivery_path(state_dir, name), json.dumps(asdict(delivery)).encode())


def delivery(state_dir: Path, name: str) -> Delivery | None:
    """What this machine delivered for code slot or transfer id `name`, if it did."""
    body = _read(_delivery_path(state_dir, name))
    return None if body is None else Delivery(**body)
