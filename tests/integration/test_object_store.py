"""The relay's object stores on real storage: the folder (`relay.storage.files`) and an S3
bucket (`relay.storage.s3`, on a local moto server). Both keep what a write promises (durable
before it returns, cut at the offset, bounded by the limit), and a second store on the same
storage (another relay instance) carries on where the first left off. The folder's disk work
runs in worker threads, never on the event loop; the bucket never shows a write half-done."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from peers.s3 import S3Bucket

from relay import errors
from relay.storage import files, s3
from relay.storage.files import FileObjectStore
from relay.storage.interface import ObjectStore
from relay.storage.s3 import S3Location, S3ObjectStore
from transfer_codes.tokens import new_transfer_id

# Everything that touches the disk on the path of a store call (Path.stat and Path.exists go
# through os.stat; Path.open through pathlib).
DISK_CALLS: list[tuple[Any, str]] = [
    (os, "open"),
    (os, "write"),
    (os, "pwrite"),
    (os, "lseek"),
    (os, "fsync"),
    (os, "stat"),
    (os, "close"),
    (Path, "open"),
]


def spy_on_disk(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Record each disk call as (name, made on the event loop's thread)."""
    loop_thread = threading.get_ident()
    calls: list[tuple[str, bool]] = []

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, threading.get_ident() == loop_thread))
            return real(*args, **kwargs)

        return call

    for owner, name in DISK_CALLS:
        monkeypatch.setattr(owner, name, spy(name, getattr(owner, name)))
    return calls


async def blocks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(store: ObjectStore, tid: str, index: int, start: int = 0) -> bytes:
    return b"".join([block async for block in store.read(tid, index, start)])


@pytest.mark.asyncio
async def test_no_disk_work_on_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileObjectStore(tmp_path / "objects")
    tid = new_transfer_id()
    first = [os.urandom(300_000), os.urandom(900_000), os.urandom(10)]
    calls = spy_on_disk(monkeypatch)

    assert await store.write_at(tid, 0, 0, blocks(*first), 1 << 30) == 1_200_010
    assert await store.size(tid, 0) == 1_200_010
    assert await store.size(tid, 1) == 0  # never written
    assert await read_all(store, tid, 0, 5) == b"".join(first)[5:]
    # resuming at an offset cuts what lies past it, then appends
    assert await store.write_at(tid, 0, 100, blocks(b"resumed"), 1 << 30) == 107
    assert await read_all(store, tid, 0) == first[0][:100] + b"resumed"

    assert calls, "the spies saw nothing"
    assert [name for name, on_loop in calls if on_loop] == []
    assert ("fsync", False) in calls


class Stores:
    """Opens stores on one folder or one bucket prefix, as several relay instances would."""

    def __init__(self, backend: str, folder: Path, bucket: S3Bucket | None) -> None:
        self.backend = backend
        self.folder = folder
        self.bucket = bucket
        self.prefix = bucket.new_prefix() if bucket else ""
        self._opened: list[S3ObjectStore] = []

    async def open(self) -> ObjectStore:
        if self.bucket is None:
            return FileObjectStore(self.folder)
        settings = self.bucket.settings(self.prefix)
        store = await S3ObjectStore.open(
            S3Location.parse(settings["objects_url"]),
            endpoint_url=settings["s3_endpoint_url"],
            region=settings["s3_region"],
            credentials_file=settings["s3_credentials_file"],
        )
        self._opened.append(store)
        return store

    def stored(self, tid: str) -> list[str]:
        """What the storage itself holds for a transfer (not asking a store)."""
        if self.bucket is None:
            folder = self.folder / tid
            return sorted(p.name for p in folder.iterdir()) if folder.exists() else []
        return self.bucket.keys(f"{self.prefix}/transfers/{tid}/")

    async def close(self) -> None:
        for store in self._opened:
            await store.close()


@pytest_asyncio.fixture(params=["files", "s3"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    bucket = request.getfixturevalue("s3_bucket") if request.param == "s3" else None
    opened = Stores(request.param, tmp_path / "objects", bucket)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.mark.asyncio
async def test_writes_resume_cut_and_read(stores: Stores) -> None:
    store = await stores.open()
    tid = new_transfer_id()
    first = [os.urandom(300_000), os.urandom(900_000), os.urandom(10)]
    assert await store.write_at(tid, 0, 0, blocks(*first), 1 << 30) == 1_200_010
    assert await store.size(tid, 0) == 1_200_010
    assert await store.size(tid, 1) == 0  # never written
    assert await read_all(store, tid, 0, 5) == b"".join(first)[5:]
    assert await store.write_at(tid, 0, 1_200_010, blocks(b"more"), 1 << 30) == 1_200_014
    assert await read_all(store, tid, 0, 1_200_000) == first[2] + b"more"
    # resuming at an offset cuts what lies past it (inside the first write, too), then appends
    assert await store.write_at(tid, 0, 100, blocks(b"resumed"), 1 << 30) == 107
    assert await read_all(store, tid, 0) == first[0][:100] + b"resumed"
    assert await store.sha256(tid, 0) == hashlib.sha256(first[0][:100] + b"resumed").hexdigest()
    assert await store.write_at(tid, 0, 0, blocks(b"anew"), 1 << 30) == 4
    assert await read_all(store, tid, 0) == b"anew"
    with pytest.raises(errors.BadRequest):
        await store.size("../" + tid[3:], 0)
    with pytest.raises(errors.BadRequest):
        await store.size(tid, -1)


@pytest.mark.asyncio
async def test_reads_end_at_the_end_whatever_the_size(stores: Stores) -> None:
    """Sizes on and around the read block (the file store closes a file with the short read
    that ends it) and the write batch (the first batch opens the file)."""
    store = await stores.open()
    tid = new_transfer_id()
    block = files.READ_BLOCK
    for index, size in enumerate(
        [0, 1, block - 1, block, block + 1, 2 * block, files.WRITE_BATCH, files.WRITE_BATCH + 1]
    ):
        data = os.urandom(size)
        parts = [data[i : i + 100_000] for i in range(0, size, 100_000)]
        assert await store.write_at(tid, index, 0, blocks(*parts), 1 << 30) == size
        assert await read_all(store, tid, index) == data
        assert await read_all(store, tid, index, size) == b""
        if size:
            assert await read_all(store, tid, index, size - 1) == data[-1:]


@pytest.mark.asyncio
async def test_an_interrupted_upload_resumes_through_another_store(stores: Stores) -> None:
    """An upload cut off on one relay instance goes on through another: what was acknowledged
    is there, what was not is dropped, and nothing was kept in the first one's memory."""
    first, second = await stores.open(), await stores.open()
    tid = new_transfer_id()
    acknowledged = os.urandom(700_000)
    assert await first.write_at(tid, 3, 0, blocks(acknowledged), 1 << 30) == 700_000

    async def cut_off() -> AsyncIterator[bytes]:
        yield b"never acknowledged"
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await first.write_at(tid, 3, 700_000, cut_off(), 1 << 30)
    assert await second.size(tid, 3) == 700_000
    rest = os.urandom(300_000)
    assert await second.write_at(tid, 3, 700_000, blocks(rest), 1 << 30) == 1_000_000
    assert await first.sha256(tid, 3) == hashlib.sha256(acknowledged + rest).hexdigest()
    assert await read_all(first, tid, 3, 699_999) == acknowledged[-1:] + rest


@pytest.mark.asyncio
async def test_delete_transfer_leaves_nothing(stores: Stores) -> None:
    store = await stores.open()
    tid, bystander = new_transfer_id(), new_transfer_id()
    for index in range(3):
        await store.write_at(tid, index, 0, blocks(b"sealed", b"bytes"), 1 << 20)
        await store.write_at(tid, index, 11, blocks(b"more"), 1 << 20)
    await store.write_at(bystander, 0, 0, blocks(b"kept"), 1 << 20)
    assert len(stores.stored(tid)) >= 3
    await store.delete_transfer(tid)
    assert stores.stored(tid) == []
    assert await store.size(tid, 0) == 0
    await store.delete_transfer(tid)  # again: nothing to do, no error
    assert await read_all(store, bystander, 0) == b"kept"


@pytest.mark.asyncio
async def test_a_write_is_cut_at_the_limit(stores: Stores) -> None:
    store = await stores.open()
    tid = new_transfer_id()
    with pytest.raises(errors.ObjectTooLarge):
        await store.write_at(tid, 0, 0, blocks(b"a" * 600, b"b" * 600), 1000)
    assert await store.write_at(tid, 0, 0, blocks(b"a" * 600, b"b" * 400), 1000) == 1000
    assert await read_all(store, tid, 0) == b"a" * 600 + b"b" * 400
    quota = errors.QuotaExceeded("over the site's quota")
    with pytest.raises(errors.QuotaExceeded):
        await store.write_at(tid, 0, 1000, blocks(b"c"), 1000, quota)
    assert await read_all(store, tid, 0) == b"a" * 600 + b"b" * 400


@pytest.mark.asyncio
async def test_a_cancelled_write_waits_for_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelling the request must not close the descriptor under a thread still writing to it
    (the number could be reused by another file), nor leave a write landing later."""
    store = FileObjectStore(tmp_path / "objects")
    tid = new_transfer_id()
    started = threading.Event()
    finished: list[float] = []
    real_pwrite = os.pwrite

    def slow_pwrite(fd: int, data: Any, offset: int) -> int:
        started.set()
        time.sleep(0.3)
        done = real_pwrite(fd, data, offset)
        finished.append(time.monotonic())
        return done

    monkeypatch.setattr(os, "pwrite", slow_pwrite)
    task = asyncio.create_task(store.write_at(tid, 0, 0, blocks(b"x" * 1000), 1 << 20))
    assert await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished, "the cancelled write returned while its thread was still writing"


@pytest_asyncio.fixture
async def s3_stores(tmp_path: Path, s3_bucket: S3Bucket) -> AsyncIterator[Stores]:
    opened = Stores("s3", tmp_path, s3_bucket)
    try:
        yield opened
    finally:
        await opened.close()


def unfinished(stores: Stores, tid: str) -> bool:
    return any(k.startswith("(unfinished)") for k in stores.stored(tid))


async def until_unfinished(stores: Stores, tid: str, task: asyncio.Task[int]) -> None:
    """Wait (generously) until the write has an unfinished multipart upload in the bucket."""
    for _ in range(600):
        if task.done() or unfinished(stores, tid):
            break
        await asyncio.sleep(0.1)
    assert unfinished(stores, tid), stores.stored(tid)


@pytest.mark.asyncio
async def test_a_reader_never_sees_a_write_half_done(s3_stores: Stores) -> None:
    """A write larger than one PUT is a multipart upload: until `write_at` returns, other
    instances see the object as it was, and a write that fails leaves nothing behind."""
    writer, reader = await s3_stores.open(), await s3_stores.open()
    tid = new_transfer_id()
    before = os.urandom(1000)
    await writer.write_at(tid, 0, 0, blocks(before), 1 << 30)
    big = os.urandom(s3.PART_BUFFER + 4 * 1024 * 1024)  # two parts: one full, one short
    go_on = asyncio.Event()

    async def held(*parts: bytes) -> AsyncIterator[bytes]:
        yield parts[0]
        await go_on.wait()
        for part in parts[1:]:
            yield part

    split = s3.PART_BUFFER + 1
    task = asyncio.create_task(
        writer.write_at(tid, 0, 1000, held(big[:split], big[split:]), 1 << 30)
    )
    await until_unfinished(s3_stores, tid, task)
    assert await reader.size(tid, 0) == 1000
    assert await read_all(reader, tid, 0) == before
    go_on.set()
    assert await task == 1000 + len(big)
    assert await reader.size(tid, 0) == 1000 + len(big)
    assert await reader.sha256(tid, 0) == hashlib.sha256(before + big).hexdigest()
    assert not unfinished(s3_stores, tid)
    assert len(s3_stores.stored(tid)) == 2  # one part per acknowledged write

    # a large write that fails half-way leaves no part and no unfinished upload
    async def broken() -> AsyncIterator[bytes]:
        yield big
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await writer.write_at(tid, 0, 1000 + len(big), broken(), 1 << 30)
    assert len(s3_stores.stored(tid)) == 2, s3_stores.stored(tid)
    assert await reader.size(tid, 0) == 1000 + len(big)

    # nor does a cancelled one
    go_on.clear()
    task = asyncio.create_task(writer.write_at(tid, 0, 1000 + len(big), held(big, b"x"), 1 << 30))
    await until_unfinished(s3_stores, tid, task)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(s3_stores.stored(tid)) == 2, s3_stores.stored(tid)

    # cutting inside the large part keeps its head (copied within the bucket)
    cut = 1000 + s3.PART_BUFFER + 12345
    assert await reader.write_at(tid, 0, cut, blocks(b"tail"), 1 << 30) == cut + 4
    assert await read_all(writer, tid, 0) == (before + big)[:cut] + b"tail"
    assert len(s3_stores.stored(tid)) == 3


@pytest.mark.asyncio
async def test_a_write_of_exactly_one_buffer_is_one_put(s3_stores: Stores) -> None:
    """A sender's whole segment (PART_BUFFER bytes) is one PUT; one byte more is a multipart
    upload (S3 marks its ETag with the number of pieces)."""
    store = await s3_stores.open()
    assert s3_stores.bucket is not None
    client = s3_stores.bucket.client()
    tid = new_transfer_id()
    block = 256 * 1024
    segment = [os.urandom(block) for _ in range(s3.PART_BUFFER // block)]
    assert await store.write_at(tid, 0, 0, blocks(*segment), 1 << 30) == s3.PART_BUFFER
    assert await store.write_at(tid, 1, 0, blocks(*segment, b"x"), 1 << 30) == s3.PART_BUFFER + 1
    etags = [
        client.head_object(Bucket=s3_stores.bucket.bucket, Key=key)["ETag"]
        for key in s3_stores.stored(tid)
    ]
    assert ["-" in etag for etag in etags] == [False, True]
    assert await read_all(store, tid, 0) == b"".join(segment)


@pytest.mark.asyncio
async def test_a_read_after_size_refuses_a_part_changed_since(s3_stores: Stores) -> None:
    """`read` starts from the parts `size` listed just before; a part rewritten meanwhile (by
    another instance) is refused as damaged, never read as something else."""
    reader, writer = await s3_stores.open(), await s3_stores.open()
    tid = new_transfer_id()
    assert await writer.write_at(tid, 0, 0, blocks(b"first contents"), 1 << 20) == 14
    assert await reader.size(tid, 0) == 14
    assert await read_all(reader, tid, 0, 6) == b"contents"  # from what size() listed
    assert await reader.size(tid, 0) == 14
    assert await writer.write_at(tid, 0, 0, blocks(b"other"), 1 << 20) == 5
    with pytest.raises(errors.StoredObjectDamaged):
        await read_all(reader, tid, 0)
    assert await read_all(reader, tid, 0) == b"other"  # listed again


@pytest.mark.asyncio
async def test_a_bucket_out_of_reach_is_storage_unavailable(s3_bucket: S3Bucket) -> None:
    """A failing S3 service is told as such (503 `storage-unavailable`), not as a 500."""
    name = "gone-" + s3_bucket.new_prefix()
    s3_bucket.client().create_bucket(Bucket=name)
    settings = s3_bucket.settings("relay")
    store = await S3ObjectStore.open(
        S3Location.parse(f"s3://{name}/relay"),
        endpoint_url=settings["s3_endpoint_url"],
        region=settings["s3_region"],
        credentials_file=settings["s3_credentials_file"],
    )
    try:
        tid = new_transfer_id()
        await store.write_at(tid, 0, 0, blocks(b"kept"), 1 << 20)
        await store.delete_transfer(tid)
        s3_bucket.client().delete_bucket(Bucket=name)
        with pytest.raises(errors.StorageUnavailable) as raised:
            await store.write_at(tid, 0, 0, blocks(b"lost"), 1 << 20)
        assert raised.value.status == 503
        with pytest.raises(errors.StorageUnavailable):
            await store.size(tid, 0)
        with pytest.raises(errors.StorageUnavailable):
            await read_all(store, tid, 0)
        with pytest.raises(errors.StorageUnavailable):
            await store.delete_transfer(tid)
    finally:
        await store.close()
