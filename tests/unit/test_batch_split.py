"""How the receiving site splits the images it fetches into requests (`batch_staging.batches`)."""

from __future__ import annotations

from staged_files import ct_entry

from receiving_site.batch_staging import BATCH_BYTES, SMALL_OBJECT, batches
from transfer_codes import wire
from transfer_codes.manifest import ManifestEntry


def _indices(split: list[list[ManifestEntry]]) -> list[list[int]]:
    return [[e.index for e in batch] for batch in split]


def test_every_image_is_fetched_once_large_ones_alone() -> None:
    sizes = [100, SMALL_OBJECT + 1, 100, 100, SMALL_OBJECT, 5 * SMALL_OBJECT, 100]
    split = batches([ct_entry(i, s) for i, s in enumerate(sizes)], 2)
    assert _indices(split) == [[1], [5], [0, 2, 3], [4, 6]]


def test_small_images_make_as_many_requests_as_run_side_by_side() -> None:
    entries = [ct_entry(i, 1000) for i in range(10)]
    assert [len(b) for b in batches(entries, 4)] == [3, 3, 3, 1]
    assert [len(b) for b in batches(entries[:3], 4)] == [1, 1, 1]
    assert batches([], 4) == []


def test_a_batch_holds_at_most_its_count_and_its_bytes() -> None:
    many = batches([ct_entry(i, 10) for i in range(1000)], 4)
    assert {len(b) for b in many} == {wire.BATCH_OBJECTS} | {1000 % wire.BATCH_OBJECTS}
    size = SMALL_OBJECT * 3 // 4
    heavy = batches([ct_entry(i, size) for i in range(40)], 4)
    assert all(sum(e.size for e in b) <= BATCH_BYTES for b in heavy)
    assert [len(b) for b in heavy] == [5] * 8
    assert sorted(e.index for b in many for e in b) == list(range(1000))
