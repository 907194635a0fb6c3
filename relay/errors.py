"""Everything the relay refuses, as exceptions whose docstring is what the caller is told.

The web layer maps these to RFC 9457 problem documents in one place (`relay.api.problems`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from transfer_codes.messages import from_docstring
from transfer_codes.wire import Problem


class RelayError(Exception):
    """The relay could not do that."""

    status = 400
    code: str = Problem.RELAY_ERROR

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or from_docstring(type(self)))

    @property
    def detail(self) -> str:
        return str(self.args[0])


class ConfigError(RelayError):
    """The relay's configuration is not valid; it will not start until it is fixed."""

    code: str = Problem.CONFIG


class NoRelayData(ConfigError):
    """That folder holds no relay database. Give --data the folder the relay runs with; to set up
    a new relay there, add --create."""


class DataFolderUnusable(ConfigError):
    """The relay's data folder cannot be used. Check --data: it must be a folder this user can
    write."""


class CannotListen(ConfigError):
    """The relay could not listen on that address. Stop whatever uses the port, or choose another
    with --listen."""


class NotAuthenticated(RelayError):
    """This request needs a valid site credential (Authorization: Bearer ...)."""

    status = 401
    code: str = Problem.NOT_AUTHENTICATED


class NotPermitted(RelayError):
    """Your site is not allowed to do that."""

    status = 403
    code: str = Problem.NOT_PERMITTED


class NotFound(RelayError):
    """There is no such transfer for your site."""

    status = 404
    code: str = Problem.NOT_FOUND


class BadRequest(RelayError):
    """The request is malformed; nothing was changed."""

    status = 400
    code: str = Problem.BAD_REQUEST


class ClientTooSlow(RelayError):
    """The request's body stopped arriving; nothing past the last acknowledged byte was kept.
    Send it again (an upload from the offset the relay last acknowledged)."""

    status = 408
    code: str = Problem.CLIENT_TOO_SLOW

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The request's body stopped arriving for {seconds:g} seconds, so the relay stopped "
            "waiting for it. Nothing past the last acknowledged byte was kept: send it again "
            "(an upload resumes from the offset the relay last acknowledged)."
        )


# Who sent the wrong codes, by the kind of limit reached (`relay.throttle.keys`): this address,
# this site's credential, or anyone (the relay-wide limit alone), the nearest first; phone
# links are counted apart ("link").
_THROTTLED_BY = (
    ("link", "Too many links that lead nowhere came from here recently."),
    ("address", "Too many wrong codes came from here recently."),
    ("site", "Too many wrong codes came with this site's credential recently."),
    (
        "global",
        "Too many wrong codes were tried on this relay recently, not only from here.",
    ),
)


class Throttled(RelayError):
    """Too many wrong codes or links came from here recently. Wait, then try again."""

    status = 429
    code: str = Problem.THROTTLED

    def __init__(self, retry_after: float, engaged: Sequence[str] = ("address",)) -> None:
        minutes = max(1, math.ceil(retry_after / 60))
        why = next((w for kind, w in _THROTTLED_BY if kind in engaged), _THROTTLED_BY[0][1])
        # Under a minute: attempts sent at once, waiting for their answers (`relay.throttle`).
        when = f"{minutes} minute{'s' if minutes > 1 else ''}"
        super().__init__(
            f"{why} Try again in {when if retry_after >= 60 else 'a few seconds'}; a code typed "
            "correctly is not affected by this wait once it ends."
        )
        self.retry_after = math.ceil(retry_after)


class SiteDisabled(RelayError):
    """This site is disabled on this relay. Ask the relay's operator."""

    status = 403
    code: str = Problem.SITE_DISABLED


class UnknownSite(RelayError):
    """There is no trauma center by that name on this relay. Check the directory of destinations."""

    status = 404
    code: str = Problem.UNKNOWN_SITE


class UnknownSiteName(RelayError):
    """There is no site by that name on this relay; `trauma-relay site list` shows them."""

    status = 404
    code: str = Problem.UNKNOWN_SITE


class SiteExists(RelayError):
    """A site with that name already exists."""

    status = 409
    code: str = Problem.SITE_EXISTS


class InvalidTransition(RelayError):
    """The transfer is not in a state that allows this."""

    status = 409
    code: str = Problem.INVALID_STATE


class TransferExpired(InvalidTransition):
    """This transfer has expired; its images are deleted. Ask the sending hospital to send again."""

    status = 410
    code: str = Problem.EXPIRED


class TransferRevoked(InvalidTransition):
    """This transfer was revoked; nothing can be taken from it."""

    status = 410
    code: str = Problem.REVOKED


class CancelledByFamily(TransferRevoked):
    """This transfer was cancelled by the patient or family, so its images cannot be taken;
    nothing was stored. If they agree to share after all, the sending hospital must send the
    study again."""


class AlreadyRedeemed(InvalidTransition):
    """The trauma center has already taken this transfer, so it can no longer be revoked."""

    code: str = Problem.ALREADY_REDEEMED


class CodeNotAccepted(RelayError):
    """That code was not accepted. Check it against the transfer sheet; if it still fails,
    call the sending hospital, which can issue a new code."""

    status = 403
    code: str = Problem.CODE_NOT_ACCEPTED


class AwaitingAuthorization(RelayError):
    """The code is right, but the patient or family has not authorized the transfer yet.
    Try again after they have, or ask the sending hospital about break-glass."""

    status = 409
    code: str = Problem.AWAITING_AUTHORIZATION


class UploadConflict(RelayError):
    """The upload offset does not match what the relay holds; resume from the relay's offset."""

    status = 409
    code: str = Problem.UPLOAD_OFFSET_MISMATCH


class UploadBusy(UploadConflict):
    """Another write of this object (through another relay instance) has not ended yet; resume
    from the relay's offset in a moment."""


class TooManyOpenTransfers(RelayError):
    """This site has too many transfers open on this relay. Revoke the ones no longer needed,
    or wait until some are delivered or expire."""

    status = 429
    code: str = Problem.SITE_LIMIT


class QuotaExceeded(RelayError):
    """This upload would pass what this relay keeps for one site or one transfer."""

    status = 413
    code: str = Problem.TOO_LARGE


class StorageFull(RelayError):
    """The relay's disk is full, so it takes no new uploads for now; what it already holds is
    safe. Try again later, and tell the relay's operator."""

    status = 507
    code: str = Problem.STORAGE_FULL


class StorageUnavailable(RelayError):
    """The relay cannot reach its object store just now. Nothing it acknowledged is lost: try
    again in a moment, and tell the relay's operator if this goes on."""

    status = 503
    code: str = Problem.STORAGE_UNAVAILABLE


class ObjectTooLarge(RelayError):
    """The object is larger than this relay accepts."""

    status = 413
    code: str = Problem.TOO_LARGE


class ManifestBatchTooLarge(RelayError):
    """That batch of manifest records is larger than the relay takes in one request."""

    status = 413
    code: str = Problem.TOO_LARGE


class ObjectIncomplete(RelayError):
    """That object is not completely uploaded yet."""

    status = 409
    code: str = Problem.OBJECT_INCOMPLETE


class StoredObjectDamaged(RelayError):
    """The relay's stored copy of that object is damaged or missing. Ask the sending hospital to
    send the study again."""

    status = 500
    code: str = Problem.STORED_OBJECT_DAMAGED


class IntegrityError(RelayError):
    """The uploaded bytes do not match their declared size or checksum; upload the object again."""

    status = 422
    code: str = Problem.INTEGRITY


class AuditTrailUnreadable(ConfigError):
    """The relay's audit trail could not be read from that folder. Give --data the folder the
    relay runs with."""


class ExportFileExists(ConfigError):
    """That file already exists, and an export never overwrites one. Choose another --out, or
    move the old file away first."""


class ForwardingPositionWrong(ConfigError):
    """The position file does not match this audit trail: it was kept for another relay's
    trail, or the trail was restored from an older backup. Check --position and --data."""


class SyslogUnreachable(ConfigError):
    """The audit records could not be sent to that syslog receiver. Check --to and --ca, and that
    it takes TLS there."""
