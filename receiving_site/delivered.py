"""This machine's record of the transfers it redeemed and delivered, so that a code typed (or
a QR scanned) again says when and where its study went instead of a bare refusal.

One small file per transfer, `<state>/receiving/history/<transfer id>.json` (0600, written
atomically): the relay, a digest of the code (never the code, never a key), when it was
redeemed and, once delivered, when, where and how many images. A code is recognised by its
digest; a QR capability, or `--resume`, by its transfer id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from receiving_site import state
from site_agent.local_state import write_atomically
from transfer_codes.capability import Capability
from transfer_codes.codes import RedemptionCode
from transfer_codes.tokens import is_transfer_id


@dataclass(frozen=True)
class Delivered:
    """A transfer delivered here: `at` (seconds since the epoch), `destination` as shown to
    staff (the PACS address or the folder), `instances` stored."""

    transfer_id: str
    at: float
    destination: str
    instances: int


def code_digest(relay: str, secret: RedemptionCode | Capability) -> str:
    """What the record keeps to recognise a secret: a digest of the code (its locator and
    secret, on this relay), or the transfer id a QR names."""
    if isinstance(secret, Capability):
        return secret.transfer_id
    text = f"trauma-relay delivered code\x00{relay.rstrip('/')}\x00{secret.compact()}"
    return hashlib.sha256(text.encode()).hexdigest()


def _folder(state_dir: Path) -> Path:
    path = state.folder(state_dir) / "history"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _path(state_dir: Path, transfer_id: str) -> Path:
    if not is_transfer_id(transfer_id):
        raise ValueError(f"not a transfer id: {transfer_id!r}")
    return _folder(state_dir) / f"{transfer_id}.json"


def _read(path: Path) -> dict[str, object] | None:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # unreadable: as if absent, it only ever adds a hint
    return body if isinstance(body, dict) else None


def note_redeemed(
    state_dir: Path, transfer_id: str, relay: str, secret: RedemptionCode | Capability
) -> None:
    """Record that this machine redeemed `transfer_id` with `secret` (kept if already there)."""
    path = _path(state_dir, transfer_id)
    if _read(path) is None:
        body = {"transfer_id": transfer_id, "relay": relay, "secret": code_digest(relay, secret)}
        write_atomically(path, json.dumps(body).encode())


def note_delivered(state_dir: Path, relay: str, delivered: Delivered) -> None:
    """Record where and when `delivered.transfer_id` was delivered."""
    path = _path(state_dir, delivered.transfer_id)
    body = _read(path) or {"transfer_id": delivered.transfer_id, "relay": relay}
    body["delivered"] = {
        "at": delivered.at,
        "destination": delivered.destination,
        "instances": delivered.instances,
    }
    write_atomically(path, json.dumps(body).encode())


def _delivered(body: dict[str, object]) -> Delivered | None:
    done = body.get("delivered")
    if not isinstance(done, dict):
        return None
    try:
        return Delivered(
            str(body["transfer_id"]),
            float(done["at"]),
            str(done["destination"]),
            int(done["instances"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def find_transfer(state_dir: Path, transfer_id: str) -> Delivered | None:
    """The delivery of `transfer_id`, if this machine made it; None otherwise."""
    body = _read(_path(state_dir, transfer_id))
    return _delivered(body) if body else None


def find(state_dir: Path, relay: str, secret: RedemptionCode | Capability) -> Delivered | None:
    """The delivery of the transfer `secret` unlocks on `relay`, if this machine made it;
    None otherwise."""
    if isinstance(secret, Capability):
        return find_transfer(state_dir, secret.transfer_id)
    wanted = code_digest(relay, secret)
    for path in sorted(_folder(state_dir).glob("*.json")):
        body = _read(path)
        if body and body.get("secret") == wanted:
            return _delivered(body)
    return None
