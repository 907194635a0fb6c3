"""Which trauma center `--to` means: exact name, display name, any letter case where unambiguous;
otherwise refused with the nearest name (difflib) and the list."""

from __future__ import annotations

import pytest

from sending_site.destinations import MOST_LISTED, Destination, closest, resolve
from sending_site.errors import AmbiguousDestination, DisabledDestination, UnknownDestination

COUNTY = Destination("county-trauma", "County Trauma Center")
NORTH = Destination("north-trauma", "North Trauma")
SITES = [COUNTY, NORTH]


@pytest.mark.parametrize(
    "given",
    [
        "county-trauma",
        "County-Trauma",
        "COUNTY-TRAUMA",
        "County Trauma Center",
        "county trauma  center",
    ],
)
def test_name_or_display_name_in_any_case(given: str) -> None:
    assert resolve(given, SITES) == COUNTY


def test_an_exact_name_wins_over_a_case_insensitive_match() -> None:
    lower, upper = Destination("er-b", "B"), Destination("ER-B", "b")
    assert resolve("ER-B", [lower, upper]) == upper


def test_letter_case_that_fits_two_sites_is_ambiguous() -> None:
    twins = [Destination("east", "Mercy Trauma"), Destination("west", "MERCY TRAUMA")]
    with pytest.raises(AmbiguousDestination) as raised:
        resolve("mercy trauma", twins)
    assert "could mean east (Mercy Trauma), west (MERCY TRAUMA)" in str(raised.value)
    assert "Nothing was sent" in str(raised.value)


def test_a_typo_gets_the_closest_name_and_the_list() -> None:
    with pytest.raises(UnknownDestination) as raised:
        resolve("county-truama", SITES)
    assert str(raised.value) == (
        '"county-truama" is not a trauma center on this relay. Did you mean county-trauma '
        "(County Trauma Center)? Nothing was sent. The trauma centers are: county-trauma "
        "(County Trauma Center), north-trauma (North Trauma) (trauma-relay destinations lists "
        "them)."
    )


def test_a_typo_of_the_display_name_suggests_its_site() -> None:
    assert closest("Nort Trauma", SITES) == NORTH


def test_nothing_near_means_no_suggestion() -> None:
    with pytest.raises(UnknownDestination) as raised:
        resolve("st-elsewhere-pediatric", SITES)
    assert "Did you mean" not in str(raised.value)
    assert "The trauma centers are: county-trauma" in str(raised.value)


def test_a_relay_without_trauma_centers_says_so() -> None:
    with pytest.raises(UnknownDestination, match="which has none yet"):
        resolve("county-trauma", [])


def test_a_long_list_is_cut_short() -> None:
    many = [Destination(f"site-{i:03d}") for i in range(MOST_LISTED + 5)]
    with pytest.raises(UnknownDestination) as raised:
        resolve("nowhere-at-all", many)
    assert "site-019 and 5 more (trauma-relay destinations lists them)" in str(raised.value)
    assert "site-020" not in str(raised.value)


def test_label_shows_the_display_name_only_when_it_says_more() -> None:
    assert COUNTY.label() == "county-trauma (County Trauma Center)"
    assert Destination("x", "x").label() == "x"
    assert Destination("x", " ").label() == "x"


def test_a_disabled_center_is_told_as_disabled_not_unknown() -> None:
    with pytest.raises(DisabledDestination) as refused:
        resolve("County Trauma Center", [NORTH], [COUNTY])
    assert str(refused.value) == (
        "county-trauma (County Trauma Center) is on this relay, but the relay's operator has "
        "disabled it, so nothing can be sent there. Only the relay's operator can enable it "
        "again (trauma-relay site enable county-trauma, run on the relay): ask them. Nothing "
        "was sent. The trauma centers open to transfers are: north-trauma (North Trauma)."
    )
    assert resolve("north-trauma", [NORTH], [COUNTY]) == NORTH
