"""A push following a study in the inbox takes each image as the inbox's checks described it
(`Arrivals.described`), the first images too: it reads only the files nobody described, and
the checks over the whole collection (one patient) still hold."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sending_site import collect, errors
from sending_site.push import PushRequest, _first_arrivals
from sending_site.source import Arrivals
from sending_site.synthetic import make_ct_study

AS_DESCRIBED = "as the inbox described it"


def _study(folder: Path, count: int = 3) -> list[Path]:
    return sorted(p.resolve() for p in make_ct_study(folder, count, rows=16, columns=16))


def test_a_described_file_is_taken_as_described_and_the_rest_are_read(tmp_path: Path) -> None:
    first, *rest = _study(tmp_path / "study")
    described = dataclasses.replace(collect.read_instance(first), study_description=AS_DESCRIBED)
    c = collect.collect([first, *rest], described={first: described})
    by_path = {i.path: i for i in c.instances}
    assert by_path[first] is described
    assert [by_path[p] for p in rest] == [collect.read_instance(p) for p in rest]
    assert all(by_path[p].study_description != AS_DESCRIBED for p in rest)


def test_a_description_given_through_a_link_to_the_folder_is_taken(tmp_path: Path) -> None:
    """A spool folder configured through a link (or relatively) names its files by paths that
    are not the resolved ones the files are read by: the descriptions are still taken."""
    study = (tmp_path / "study").resolve()
    first, *rest = _study(study)
    link = tmp_path / "spool"
    link.symlink_to(study, target_is_directory=True)
    via = [link / p.relative_to(study) for p in (first, *rest)]
    described = dataclasses.replace(
        collect.read_instance(first), path=via[0], study_description=AS_DESCRIBED
    )
    c = collect.collect(via, described={via[0]: described})
    by_path = {i.path: i for i in c.instances}
    assert sorted(by_path) == [first, *rest]  # by the resolved paths, as read
    assert by_path[first].study_description == AS_DESCRIBED
    assert by_path[first] == dataclasses.replace(described, path=first)


def test_a_described_image_of_another_patient_is_still_refused(tmp_path: Path) -> None:
    first, *rest = _study(tmp_path / "study")
    other = dataclasses.replace(collect.read_instance(first), patient_id="SOMEONE-ELSE")
    with pytest.raises(errors.MixedPatients):
        collect.collect([first, *rest], described={first: other})


class _OneArrival:
    """A study source that names `paths` once, as complete, with `described`."""

    def __init__(self, paths: list[Path], described: tuple[collect.Instance, ...]) -> None:
        self.given = Arrivals(tuple(paths), complete=True, described=described)

    async def arrivals(self) -> Arrivals:
        return self.given


@pytest.mark.asyncio
async def test_a_followed_push_starts_from_the_sources_descriptions(tmp_path: Path) -> None:
    paths = _study(tmp_path / "study")
    described = tuple(
        dataclasses.replace(collect.read_instance(p), study_description=AS_DESCRIBED)
        for p in paths[:2]
    )
    request = PushRequest(
        paths=[],
        relay="http://127.0.0.1:9",
        recipient="county-trauma",
        credential="unused",
        state_dir=tmp_path / "state",
        source=_OneArrival(paths, described),
    )
    c, arrived = await _first_arrivals(request, None)
    assert arrived.complete
    assert [i.path for i in c.instances] == paths
    assert [i.study_description == AS_DESCRIBED for i in c.instances] == [True, True, False]
