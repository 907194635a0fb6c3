"""Redeem a code or QR capability and deliver the study.

1. Parse the code locally (a typo is caught here and never costs an attempt at the relay).
2. Stretch it (scrypt) with the transfer's salt, send only the proof, receive the wrapped key,
   unwrap it locally. The key is kept in this site's state folder so an interrupted download
   resumes (`--resume TRANSFER_ID`) without the code, which is spent.
3. Follow the sealed manifest while the sender may still be uploading (cut-through), staging
   and verifying every object; when the manifest is closed and everything is verified, deliver
   and post the delivery receipt.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from receiving_site import errors, pacs, staging
from relay.client import RelayClient, b64
from transfer_codes.capability import Capability
from transfer_codes.codes import RedemptionCode
from transfer_codes.errors import ManifestError
from transfer_codes.keys import stretch_capability, stretch_code, unwrap
from transfer_codes.manifest import ManifestEntry, ManifestReader
from transfer_codes.tokens import is_transfer_id

WAIT_SECONDS = 20
PARALLEL_DOWNLOADS = 4


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


@dataclass(frozen=True)
class Unlocked:
    transfer_id: str
    sender: str
    break_glass: bool


@dataclass(frozen=True)
class Progress:
    objects_done: int
    objects_listed: int
    manifest_closed: bool


@dataclass(frozen=True)
class RedeemResult:
    transfer_id: str
    instances: int
    bytes: int
    destination: str
    break_glass: bool


RedeemEvent = Unlocked | Progress


def parse_secret(text: str) -> RedemptionCode | Capability:
    """A QR capability (TR1:...) or a typed code; raises the parse error a nurse can act on."""
    cleaned = text.strip()
    if not cleaned:
        raise errors.NoSecretGiven()
    if cleaned.upper().startswith("TR") and ":" in cleaned:
        return Capability.parse(cleaned)
    return RedemptionCode.parse(cleaned)


def _key_path(state_dir: Path, transfer_id: str) -> Path:
    folder = state_dir / "receiving"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / f"{transfer_id}.json"


def _save_key(
    state_dir: Path, transfer_id: str, relay: str, data_key: bytes, meta: Unlocked
) -> None:
    path = _key_path(state_dir, transfer_id)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(
            {
                "transfer_id": transfer_id,
                "relay": relay,
                "data_key": base64.b64encode(data_key).decode("ascii"),
                "sender": meta.sender,
                "break_glass": meta.break_glass,
            },
            f,
        )
        f.flush()
        os.fsync(f.fileno())


def _load_key(state_dir: Path, transfer_id: str) -> tuple[bytes, Unlocked]:
    if not is_transfer_id(transfer_id):
        raise errors.ReceivingError(f"{transfer_id!r} is not a transfer id.")
    try:
        body = json.loads(_key_path(state_dir, transfer_id).read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise errors.ReceivingError(
            f"This machine has not redeemed transfer {transfer_id}; use its code instead."
        ) from e
    return base64.b64decode(body["data_key"]), Unlocked(
        transfer_id, str(body["sender"]), bool(body["break_glass"])
    )


async def _unlock(
    client: RelayClient, secret: RedemptionCode | Capability
) -> tuple[bytes, Unlocked]:
    if isinstance(secret, Capability):
        unlock = await asyncio.to_thread(stretch_capability, secret)
        body: dict[str, object] = {"transfer_id": secret.transfer_id, "proof": b64(unlock.proof)}
    else:
        salt = await client.request(
            "POST", "/api/v1/redemptions/salt", json={"locator": secret.locator}
        )
        unlock = await asyncio.to_thread(stretch_code, secret, base64.b64decode(str(salt["salt"])))
        body = {"locator": secret.locator, "proof": b64(unlock.proof)}
    answer = await client.request("POST", "/api/v1/redemptions", json=body)
    transfer_id = str(answer["transfer_id"])
    data_key = unwrap(base64.b64decode(str(answer["wrapped_key"])), unlock, transfer_id)
    return data_key, Unlocked(
        transfer_id, str(answer["sender"]["display_name"]), bool(answer["break_glass"])
    )


async def redeem(req: RedeemRequest, on_event: Callable[[RedeemEvent], None]) -> RedeemResult:
    async with RelayClient(req.relay, req.credential) as client:
        if req.resume:
            data_key, unlocked = _load_key(req.state_dir, req.resume)
        else:
            secret = parse_secret(req.secret or "")
            await client.health()
            data_key, unlocked = await _unlock(client, secret)
            _save_key(req.state_dir, unlocked.transfer_id, req.relay, data_key, unlocked)
        on_event(unlocked)
        transfer_id = unlocked.transfer_id
        folder = req.state_dir / "receiving" / transfer_id
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)

        reader = ManifestReader(data_key, transfer_id)
        staged: dict[int, staging.StagedObject] = {}
        next_seq = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + req.give_up_after
        limit = asyncio.Semaphore(PARALLEL_DOWNLOADS)

        async def stage(entry: ManifestEntry) -> None:
            async with limit:
                item = await staging.stage_object(client, transfer_id, data_key, entry, folder)
            staged[entry.index] = item
            on_event(Progress(len(staged), len(reader.entries), reader.closed))

        try:
            while True:
                page = await client.request(
                    "GET",
                    f"/api/v1/transfers/{transfer_id}/manifest",
                    params={"from": str(next_seq), "wait": str(WAIT_SECONDS)},
                )
                for item in page["records"]:
                    reader.add(int(item["seq"]), base64.b64decode(str(item["record"])))
                    next_seq = int(item["seq"]) + 1
                tasks = [
                    asyncio.create_task(stage(entry))
                    for index, entry in sorted(reader.entries.items())
                    if index not in staged
                ]
                try:
                    await asyncio.gather(*tasks)
                finally:  # the first failure stops the others
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
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
                        f"so far). Run: trauma-relay redeem --resume {transfer_id} ..."
                    )
            missing = reader.missing(set(staged))
            if missing:
                raise errors.VerificationFailed(
                    f"{len(missing)} images listed in the manifest are missing. Nothing was "
                    "stored in the PACS. Call the sending hospital."
                )
        except ManifestError as e:
            raise errors.VerificationFailed(
                f"The transfer's manifest failed verification ({e}). Nothing was stored in the "
                "PACS. Call the sending hospital."
            ) from e
        items = [staged[i] for i in sorted(staged)]
        summary = reader.summary
        if summary is None:
            raise errors.VerificationFailed("The transfer's manifest has no summary.")
        await asyncio.to_thread(staging.check_identity, items, summary)

        if req.pacs is not None:
            count = await asyncio.to_thread(pacs.store_to_pacs, items, req.pacs)
            destination = f"{req.pacs.ae_title}@{req.pacs.host}:{req.pacs.port}"
            kind = "pacs"
        else:
            target = (req.out or Path.cwd()) / transfer_id
            count = await asyncio.to_thread(pacs.store_to_folder, items, target)
            destination = str(target)
            kind = "folder"
        total = sum(i.entry.size for i in items)
        await client.request(
            "POST",
            f"/api/v1/transfers/{transfer_id}/receipt",
            json={"instances": count, "bytes": total, "destination": kind, "complete": True},
        )
    # Delivered and acknowledged: the staged copies and the key have done their job.
    await asyncio.to_thread(shutil.rmtree, folder, True)
    _key_path(req.state_dir, transfer_id).unlink(missing_ok=True)
    return RedeemResult(transfer_id, count, total, destination, unlocked.break_glass)
