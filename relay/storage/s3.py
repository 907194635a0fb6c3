"""The S3-compatible object store (AWS S3, MinIO, Ceph RGW): sealed objects in one bucket.

Each acknowledged `write_at` is one S3 object of its own, a *part*, named by where it starts:
`<prefix>transfers/<transfer id>/<index>/part-<offset>`. An object is its parts read in order of
their offsets. Several relay instances can share the bucket: everything an upload has, including
where it stands, is in the bucket (and the metadata store), none of it in one process's memory,
so an upload interrupted on one instance resumes on another.

Nothing is ever seen half-written: a part of up to `PART_BUFFER` bytes is one PUT, and a larger
one is a multipart upload, which S3 shows to nobody until it is completed, just before
`write_at` returns. A write that fails part-way leaves no part (its multipart upload is aborted;
if the relay dies first, the bucket's "abort incomplete multipart uploads" rule removes it). S3
has answered a PUT or a completion only once the object is stored durably, so an acknowledged
write survives a crash of the relay.

`write_at(offset)` first deletes the parts that start at or past `offset` (what a write that was
never acknowledged left), so the parts always follow each other without a gap or an overlap.

Requests to the store are what an object costs here (each is signed, and sent over a pooled
connection of the one client the store keeps open), so a download lists the object once:
`read` starts from the parts the `size` just before it listed (a download asks for both, of a
complete object, which no write changes), and fails as damaged, rather than reading something
else, if a part is not the size listed. `sha256` (of an object still being written) lists anew.

Keys are built only from the relay's own transfer id (checked to be 24 base32 symbols) and an
integer index, never from anything a peer named.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay import errors
from transfer_codes.tokens import is_transfer_id

log = logging.getLogger("relay.storage.s3")

READ_BLOCK = 256 * 1024
# What one write gathers in memory before it becomes a part of a multipart upload: over S3's
# minimum part size (5 MiB, for every part but the last), and small enough to hold per upload.
PART_BUFFER = 8 * 1024 * 1024
# The ranges one part is copied in when it must be cut (S3: at least 5 MiB but for the last).
COPY_RANGE = 64 * 1024 * 1024
_OFFSET_DIGITS = 20  # zero-padded, so listing order (by key) is offset order
# How long the parts `size` listed stand for the `read` that follows it, and how many objects'
# listings are kept for that at most (a download that ends between the two leaves one behind).
LISTING_SECONDS = 30.0
LISTINGS_KEPT = 1024
_CONTENT_RANGE = re.compile(r"bytes \d+-\d+/(\d+)")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"[A-Za-z0-9!_.*'()/-]*")


@dataclass(frozen=True)
class S3Location:
    """Where the relay keeps its objects: a bucket and a key prefix (empty or ending in /)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """`s3://bucket` or `s3://bucket/prefix`; `ConfigError` saying what is wrong."""
        scheme, sep, rest = url.partition("://")
        if scheme != "s3" or not sep:
            raise errors.ConfigError(
                f"objects_url must look like s3://BUCKET or s3://BUCKET/PREFIX, not {url!r}."
            )
        bucket, _, prefix = rest.partition("/")
        if "@" in bucket or ":" in bucket:
            raise errors.ConfigError(
                "objects_url names the bucket only: credentials come from the standard AWS "
                "environment variables or credential files (or s3_credentials_file), never the URL."
            )
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise errors.ConfigError(
                f"{bucket!r} in objects_url is not an S3 bucket name (3 to 63 characters: "
                "lower-case letters, digits, dots and hyphens)."
            )
        prefix = prefix.strip("/")
        if not _PREFIX.fullmatch(prefix) or "//" in prefix or len(prefix) > 512:
            raise errors.ConfigError(
                f"The key prefix {prefix!r} in objects_url may use only letters, digits and "
                "!_.*'()/- (and no empty segment)."
            )
        return cls(bucket, prefix + "/" if prefix else "")

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class _Part:
    key: str
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    """A failure of the S3 service (after botocore's own retries) as `StorageUnavailable`, with
    the reason in the relay's log; anything else (the client's body failing) as it is."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as e:
        log.error("object store request failed: %s", e)
        raise errors.StorageUnavailable() from e


class S3ObjectStore:
    """`ObjectStore` over an S3-compatible bucket. Open with `S3ObjectStore.open`, close with
    `close`."""

    def __init__(self, client: Any, location: S3Location, exits: contextlib.AsyncExitStack) -> None:
        self._s3 = client
        self._location = location
        self._exits = exits
        # (transfer id, index) -> (when, parts): what `size` listed, for the `read` after it.
        self._listed: dict[tuple[str, int], tuple[float, list[_Part]]] = {}

    @classmethod
    async def open(
        cls,
        location: S3Location,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        credentials_file: Path | None = None,
    ) -> S3ObjectStore:
        """A store on `location`, after checking that the bucket answers (`ConfigError` if not).

        Credentials are found as every AWS tool finds them (environment variables, the shared
        credentials file, an instance or container role); `credentials_file` names another
        shared credentials file. An `endpoint_url` (MinIO, Ceph RGW) is addressed path-style."""
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session
        from botocore.exceptions import BotoCoreError, ClientError

        session = get_session()
        _share_loader(session)
        if credentials_file is not None:
            session.set_config_variable("credentials_file", str(credentials_file))
        config = AioConfig(
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
        )
        exits = contextlib.AsyncExitStack()
        try:
            client = await exits.enter_async_context(
                session.create_client(
                    "s3", endpoint_url=endpoint_url, region_name=region, config=config
                )
            )
            await client.head_bucket(Bucket=location.bucket)
        except (BotoCoreError, ClientError) as e:
            await exits.aclose()
            where = f" at {endpoint_url}" if endpoint_url else ""
            raise errors.ConfigError(
                f"The object store {location.url}{where} cannot be used: {e}. Check the bucket "
                "name, endpoint, region and credentials, and that the relay may list and write "
                "the bucket."
            ) from e
        except BaseException:
            await exits.aclose()
            raise
        return cls(client, location, exits)

    async def close(self) -> None:
        await self._exits.aclose()

    def _transfer_prefix(self, transfer_id: str) -> str:
        if not is_transfer_id(transfer_id):
            raise errors.BadRequest("That is not a transfer id.")
        return f"{self._location.prefix}transfers/{transfer_id}/"

    def _object_prefix(self, transfer_id: str, index: int) -> str:
        if index < 0:
            raise errors.BadRequest("Object indices start at 0.")
        return f"{self._transfer_prefix(transfer_id)}{index:08d}/"

    def _part_key(self, transfer_id: str, index: int, start: int) -> str:
        return f"{self._object_prefix(transfer_id, index)}part-{start:0{_OFFSET_DIGITS}d}"

    async def _keys(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        paginator = self._s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self._location.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"], int(item["Size"])

    async def _parts(self, transfer_id: str, index: int) -> list[_Part]:
        """The object's parts in order; `StoredObjectDamaged` if they leave a gap."""
        prefix = self._object_prefix(transfer_id, index)
        parts = []
        async for key, size in self._keys(prefix):
            name = key[len(prefix) :]
            if name.startswith("part-") and name[5:].isdigit():
                parts.append(_Part(key, int(name[5:]), size))
        return _in_order(parts)

    async def _listing(self, transfer_id: str, indices: Sequence[int]) -> list[list[_Part]]:
        """The parts of each of `indices` (ascending), as stored (not checked for gaps), from one
        listing of their range of keys (a page or two when they are close, as a batch's are)."""
        prefix = self._transfer_prefix(transfer_id)
        found: dict[int, list[_Part]] = {index: [] for index in indices}
        past = f"{prefix}{indices[-1]:08d}0"  # after every key of the last object ("/" < "0")
        paginator = self._s3.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self._location.bucket, Prefix=prefix, StartAfter=f"{prefix}{indices[0]:08d}"
        )
        async for page in pages:
            for item in page.get("Contents", []):
                key = str(item["Key"])
                if key >= past:
                    return [found[index] for index in indices]
                number, _, name = key[len(prefix) :].partition("/")
                if number.isdigit() and name.startswith("part-") and name[5:].isdigit():
                    parts = found.get(int(number))
                    if parts is not None:
                        parts.append(_Part(key, int(name[5:]), int(item["Size"])))
        return [found[index] for index in indices]

    async def write_at(
        self,
        transfer_id: str,
        index: int,
        offset: int,
        body: AsyncIterator[bytes],
        limit: int,
        too_large: errors.RelayError | None = None,
        *,
        cleared: bool = False,
    ) -> int:
        """Write `body` at `offset` durably as one new part; the new end. Past `limit` bytes,
        `too_large` (by default `ObjectTooLarge`) is raised and nothing past `offset` is kept.
        Unless `cleared`, what is stored past `offset` is listed and dropped first."""
        with _unavailable():
            key = self._part_key(transfer_id, index, offset)
            self._listed.pop((transfer_id, index), None)
            if not cleared:
                await self._cut(transfer_id, index, offset)
            writer = _PartWriter(self._s3, self._location.bucket, key)
            position = offset
            try:
                async for block in body:
                    if position + len(block) > limit:
                        raise too_large or errors.ObjectTooLarge(
                            f"Objects on this relay may be at most {limit} bytes once sealed."
                        )
                    position += len(block)
                    await writer.add(block)
                await writer.finish()
            except BaseException:
                await writer.abandon()
                raise
            return position

    async def _cut(self, transfer_id: str, index: int, offset: int) -> None:
        """Drop what is stored at or past `offset`: parts starting there are deleted, and one
        running across it is replaced (in one PUT) by its bytes before `offset`."""
        prefix = self._object_prefix(transfer_id, index)
        stale: list[str] = []
        across: _Part | None = None
        async for key, size in self._keys(prefix):
            name = key[len(prefix) :]
            if not (name.startswith("part-") and name[5:].isdigit()):
                continue
            part = _Part(key, int(name[5:]), size)
            if part.start >= offset:
                stale.append(key)
            elif part.end > offset:
                across = part
        await self._delete(stale)
        if across is not None:
            await self._truncate(across, offset - across.start)

    async def _truncate(self, part: _Part, length: int) -> None:
        """Replace `part` by its first `length` bytes, at once: a small head is read and put
        back; a large one is copied inside the store by a multipart upload of ranges."""
        bucket = self._location.bucket
        if length <= PART_BUFFER:
            response = await self._s3.get_object(
                Bucket=bucket, Key=part.key, Range=f"bytes=0-{length - 1}"
            )
            async with response["Body"] as stream:
                head = await stream.read()
            await self._s3.put_object(Bucket=bucket, Key=part.key, Body=head)
            return
        created = await self._s3.create_multipart_upload(Bucket=bucket, Key=part.key)
        upload_id = created["UploadId"]
        try:
            copied = []
            for number, first in enumerate(range(0, length, COPY_RANGE), start=1):
                last = min(first + COPY_RANGE, length) - 1
                answer = await self._s3.upload_part_copy(
                    Bucket=bucket,
                    Key=part.key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": bucket, "Key": part.key},
                    CopySourceRange=f"bytes={first}-{last}",
                )
                copied.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
            await self._s3.complete_multipart_upload(
                Bucket=bucket, Key=part.key, UploadId=upload_id, MultipartUpload={"Parts": copied}
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await self._s3.abort_multipart_upload(
                    Bucket=bucket, Key=part.key, UploadId=upload_id
                )
            raise

    async def _delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = keys[i : i + 1000]
            answer = await self._s3.delete_objects(
                Bucket=self._location.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            if answer.get("Errors"):
                failed = answer["Errors"][0]
                log.error(
                    "object store did not delete %s: %s %s",
                    failed.get("Key"),
                    failed.get("Code"),
                    failed.get("Message"),
                )
                raise errors.StorageUnavailable()

    async def holds_any(self) -> bool:
        """Whether any transfer's object is stored under this store's prefix."""
        with _unavailable():
            async for _ in self._keys(f"{self._location.prefix}transfers/"):
                return True
            return False

    async def clear(self, transfer_id: str, indices: Sequence[int]) -> None:
        """One listing for all of `indices`, and one request to delete what it found."""
        with _unavailable():
            listed = await self._listing(transfer_id, indices)
            for index in indices:
                self._listed.pop((transfer_id, index), None)
            await self._delete([part.key for parts in listed for part in parts])

    async def size(self, transfer_id: str, index: int) -> int:
        """The object's size; its parts are kept for a `read` of it that follows."""
        with _unavailable():
            parts = await self._parts(transfer_id, index)
        self._keep_listed(transfer_id, index, parts)
        return parts[-1].end if parts else 0

    async def sizes(self, transfer_id: str, indices: Sequence[int]) -> list[int]:
        """`size` of each, from one listing; their parts are kept for the reads that follow."""
        with _unavailable():
            listed = [_in_order(parts) for parts in await self._listing(transfer_id, indices)]
        for index, parts in zip(indices, listed, strict=True):
            self._keep_listed(transfer_id, index, parts)
        return [parts[-1].end if parts else 0 for parts in listed]

    def _keep_listed(self, transfer_id: str, index: int, parts: list[_Part]) -> None:
        if len(self._listed) >= LISTINGS_KEPT:
            self._listed.clear()
        self._listed[(transfer_id, index)] = (time.monotonic(), parts)

    async def sha256(self, transfer_id: str, index: int) -> str:
        h = hashlib.sha256()
        with _unavailable():
            parts = await self._parts(transfer_id, index)
        async for block in self._read(parts, 0):
            h.update(block)
        return h.hexdigest()

    async def read(self, transfer_id: str, index: int, start: int) -> AsyncIterator[bytes]:
        """The object's bytes from `start`: its parts as the `size` just before listed them
        (within `LISTING_SECONDS`), else as listed now."""
        listed = self._listed.pop((transfer_id, index), None)
        if listed is not None and time.monotonic() - listed[0] <= LISTING_SECONDS:
            parts = listed[1]
        else:
            with _unavailable():
                parts = await self._parts(transfer_id, index)
        async for block in self._read(parts, start):
            yield block

    async def _read(self, parts: list[_Part], start: int) -> AsyncIterator[bytes]:
        """The bytes of `parts` from `start`; `StoredObjectDamaged` if a part is not the size
        it was listed with."""
        with _unavailable():
            for part in parts:
                if part.end <= start or part.size == 0:
                    continue
                skip = max(0, start - part.start)
                response = await self._s3.get_object(
                    Bucket=self._location.bucket, Key=part.key, Range=f"bytes={skip}-"
                )
                whole = _CONTENT_RANGE.fullmatch(response.get("ContentRange", ""))
                if whole is None or int(whole[1]) != part.size:
                    response["Body"].close()
                    raise errors.StoredObjectDamaged()
                async with response["Body"] as stream:
                    while block := await stream.read(READ_BLOCK):
                        yield block

    async def delete_transfer(self, transfer_id: str) -> None:
        """Delete the transfer's objects and abort its unfinished multipart uploads."""
        with _unavailable():
            prefix = self._transfer_prefix(transfer_id)
            bucket = self._location.bucket
            for listed in [k for k in self._listed if k[0] == transfer_id]:
                del self._listed[listed]
            paginator = self._s3.get_paginator("list_multipart_uploads")
            async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    with contextlib.suppress(self._s3.exceptions.NoSuchUpload):
                        await self._s3.abort_multipart_upload(
                            Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
            await self._delete([key async for key, _ in self._keys(prefix)])


_LOADER: list[Any] = []


def _in_order(parts: list[_Part]) -> list[_Part]:
    """`parts` sorted by where they start; `StoredObjectDamaged` if they leave a gap."""
    parts.sort(key=lambda p: p.start)
    end = 0
    for part in parts:
        if part.start != end:
            raise errors.StoredObjectDamaged()
        end = part.end
    return parts


def _share_loader(session: Any) -> None:
    """Give every session of this process the first one's loader of botocore's service
    descriptions (files it only reads, and caches), instead of parsing them again per session."""
    if _LOADER:
        session.register_component("data_loader", _LOADER[0])
    else:
        _LOADER.append(session.get_component("data_loader"))


class _PartWriter:
    """One part: a single PUT when it fits in `PART_BUFFER`, else a multipart upload (which
    nobody sees until `finish` completes it) of pieces over `PART_BUFFER` but the last."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._s3 = client
        self._bucket = bucket
        self._key = key
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._upload_id: str | None = None
        self._uploaded: list[dict[str, Any]] = []

    async def add(self, block: bytes) -> None:
        self._pending.append(block)
        self._pending_size += len(block)
        # Past the buffer, not at it: a write of exactly PART_BUFFER bytes (a sender's whole
        # segment) is one PUT, not a multipart upload of one piece.
        if self._pending_size > PART_BUFFER:
            await self._send_pending()

    async def _send_pending(self) -> None:
        if self._upload_id is None:
            created = await self._s3.create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload_id = created["UploadId"]
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        number = len(self._uploaded) + 1
        sent = await self._s3.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
        )
        self._uploaded.append({"PartNumber": number, "ETag": sent["ETag"]})

    async def finish(self) -> None:
        if self._upload_id is None:
            data = b"".join(self._pending)
            self._pending.clear()
            if data:
                await self._s3.put_object(Bucket=self._bucket, Key=self._key, Body=data)
            return
        if self._pending:
            await self._send_pending()
        await self._s3.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._uploaded},
        )
        self._upload_id = None

    async def abandon(self) -> None:
        """Abort an unfinished multipart upload (best effort: the bucket's lifecycle rule for
        incomplete multipart uploads is the second line)."""
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        with contextlib.suppress(Exception):
            await self._s3.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=upload_id
            )
