"""What the patient's phone reads: the authorization link and the blobs sealed for it.

The link is ``{relay}/authorize#<token>.<phone key>``. The token (48 Crockford symbols) lets the
phone act on the transfer at the relay, which stores only its digest. The phone key (32 random
bytes, base64url without padding) never reaches a server: browsers do not send the fragment.
The sending site seals the summary and the code for the phone under that key, and the phone seals
who authorized under it; the relay stores all three opaque.

Sealed blob: a sealed note (`transfer_codes.notes.seal_json`): ``nonce (12 random bytes) ||
AES-256-GCM(JSON)``, with additional data ``b"trauma-relay/v1/phone/" + purpose`` so one blob
cannot be passed off as another. The page's JavaScript (``relay/pages/authorize.js``) implements
the same format with WebCrypto.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from transfer_codes.notes import open_json, seal_json
from transfer_codes.qr import render_svg

PHONE_KEY_BYTES = 32
AAD_PREFIX = b"trauma-relay/v1/phone/"
PURPOSES = ("summary", "code", "authorizer")
LINK_PATH = "/authorize"
# The body regions a summary names and the page words in its language (`region.<name>` in
# relay/pages/authorize.text.json), head to toe; `sending_site.regions` maps DICOM to them.
BODY_REGIONS = (
    "head",
    "face",
    "neck",
    "cervical_spine",
    "chest",
    "heart",
    "abdomen",
    "pelvis",
    "spine",
    "arm",
    "leg",
    "whole_body",
)


def new_phone_key() -> str:
    """A fresh phone key: 32 random bytes as base64url without padding (43 characters)."""
    return encode_key(secrets.token_bytes(PHONE_KEY_BYTES))


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode("ascii")


def decode_key(text: str) -> bytes:
    """Inverse of `encode_key`; ValueError unless it is 32 bytes of base64url."""
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise ValueError("the phone key is not base64url") from e
    if len(key) != PHONE_KEY_BYTES or encode_key(key) != text:
        raise ValueError("the phone key must be 32 bytes of unpadded base64url")
    return key


def authorization_link(relay: str, token: str, phone_key: str) -> str:
    """The link the ER shows as a QR. Everything secret is in the fragment."""
    return f"{relay.rstrip('/')}{LINK_PATH}#{token}.{phone_key}"


def is_authorization_link(text: str) -> bool:
    """Whether `text` (as typed or scanned, in any letter case, with or without its fragment)
    is an authorization link of any relay: a web address whose path ends in `LINK_PATH`."""
    try:
        parts = urlsplit(text.strip())
    except ValueError:  # such as an unclosed "[" of an IPv6 address
        return False
    path = parts.path.rstrip("/").lower()
    return parts.scheme.lower() in ("http", "https") and path.endswith(LINK_PATH)


def split_link(link: str) -> tuple[str, str]:
    """(token, phone key) from an authorization link; ValueError if it is not one."""
    _, sep, fragment = link.partition("#")
    token, dot, phone_key = fragment.partition(".")
    if not sep or not dot or not token or not phone_key:
        raise ValueError("this is not an authorization link (it needs #token.key)")
    return token, phone_key


def _aad(purpose: str) -> bytes:
    return AAD_PREFIX + purpose.encode("utf-8")


def seal(key: bytes, purpose: str, value: dict[str, object]) -> bytes:
    """Seal ``value`` (JSON) for the phone; a fresh random nonce each time. ValueError for a
    purpose other than those in `PURPOSES`."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown phone blob purpose {purpose!r}")
    return seal_json(key, _aad(purpose), value)


def open_sealed(key: bytes, purpose: str, sealed: bytes) -> dict[str, object]:
    """Inverse of `seal`; raises `UnwrapError` if the blob was altered or is not this one (an
    unknown purpose included: nothing is ever sealed under one, so it cannot open)."""
    return open_json(key, _aad(purpose), sealed, "phone note")


@dataclass(frozen=True)
class PhoneSummary:
    """What the phone shows before anyone authorizes. No patient name, but still PHI-bearing
    (descriptions and dates of a person's imaging, a hint of who it is): it is only ever sealed.

    The hint lets the family check that these are their person's scans without the page
    naming anyone: initials and birth year, and the body regions scanned. Summaries sealed
    before these fields existed lack them; the page then leaves them out."""

    sender: str  # display names
    recipient: str
    study_descriptions: tuple[str, ...]
    modalities: tuple[str, ...]
    study_date: str  # YYYY-MM-DD when the DICOM date is well formed, else as found
    series_count: int
    image_count: int
    expires_at: float  # seconds since the epoch
    break_glass: bool
    patient_initials: str = ""  # "J. D.": given names first, then the family name
    patient_birth_year: str = ""  # "1985"; empty when the birth date is not known
    # `BODY_REGIONS` names, head to toe, then Body Part Examined terms not known there, as
    # found (the page shows those as they are).
    body_regions: tuple[str, ...] = ()


def seal_summary(key: bytes, summary: PhoneSummary) -> bytes:
    body = asdict(summary)
    body["study_descriptions"] = list(summary.study_descriptions)
    body["modalities"] = list(summary.modalities)
    body["body_regions"] = list(summary.body_regions)
    return seal(key, "summary", body)


def seal_code(key: bytes, code_grouped: str, capability: str) -> bytes:
    """The code as read aloud, the capability and its QR (SVG) for the phone to carry."""
    return seal(
        key,
        "code",
        {"code": code_grouped, "capability": capability, "qr_svg": render_svg(capability)},
    )


def iso_date(dicom_date: str) -> str:
    """``20250101`` -> ``2025-01-01``; anything else unchanged."""
    if len(dicom_date) == 8 and dicom_date.isdigit():
        return f"{dicom_date[:4]}-{dicom_date[4:6]}-{dicom_date[6:]}"
    return dicom_date
