"""Console sessions and the sign-in throttle, with the time passed in (a frozen clock)."""

from __future__ import annotations

from pathlib import Path

from site_agent.console.sessions import (
    ANONYMOUS_IDLE,
    MAX_AGE,
    Ended,
    Expired,
    Session,
    SessionBook,
)
from site_agent.console.throttle import PER_ADDRESS, PER_USER, WINDOW, SignInThrottle, Window

IDLE = 30 * 60.0
DRAWING = (Path(__file__).resolve().parents[2] / "docs" / "console.md").read_text("utf-8")
T0 = 1_800_000_000.0


def test_a_session_lives_while_used() -> None:
    book = SessionBook(IDLE)
    session = book.start("nurse.joy", T0)
    assert book.find(session.id, T0 + IDLE - 1) is session
    assert book.find(session.id, T0 + 2 * IDLE - 2) is session  # used at T0 + IDLE - 1


def test_a_session_ends_after_the_idle_timeout_and_says_so_once() -> None:
    book = SessionBook(IDLE)
    session = book.start("nurse.joy", T0)
    assert book.find(session.id, T0 + IDLE) == Expired("nurse.joy", Ended.IDLE, first=True)
    assert book.find(session.id, T0 + IDLE + 1) == Expired("nurse.joy", Ended.IDLE)
    assert len(book) == 0


def test_a_page_refreshing_itself_does_not_keep_a_session_alive() -> None:
    book = SessionBook(IDLE)
    session = book.start("nurse.joy", T0)
    assert isinstance(book.find(session.id, T0 + IDLE - 1, activity=False), Session)
    assert isinstance(book.find(session.id, T0 + IDLE, activity=False), Expired)


def test_a_session_ends_at_the_end_of_a_shift_even_when_used() -> None:
    book = SessionBook(IDLE)
    session = book.start("nurse.joy", T0)
    now = T0
    while now + IDLE / 2 < T0 + MAX_AGE:
        now += IDLE / 2
        assert book.find(session.id, now) is session
    assert book.find(session.id, T0 + MAX_AGE) == Expired("nurse.joy", Ended.MAX_AGE, first=True)


def test_ids_and_tokens_are_random_and_distinct() -> None:
    book = SessionBook(IDLE)
    sessions = [book.start(None, T0) for _ in range(50)]
    values = {s.id for s in sessions} | {s.csrf_token for s in sessions}
    assert len(values) == 100
    assert all(len(v) >= 43 for v in values)  # 32 random bytes, base64url


def test_an_anonymous_session_outlasts_the_idle_timeout_but_ends_silently() -> None:
    book = SessionBook(IDLE)
    anonymous = book.start(None, T0)
    assert book.find(anonymous.id, T0 + 4 * IDLE) is anonymous
    assert book.find(anonymous.id, T0 + 4 * IDLE + ANONYMOUS_IDLE) is None


def test_sessions_are_bounded_in_number_the_longest_idle_going_first() -> None:
    book = SessionBook(IDLE, max_sessions=3)
    first = book.start("a", T0)
    second = book.start("b", T0 + 1)
    book.find(first.id, T0 + 2)  # used: now the most recent
    book.start("c", T0 + 3)
    assert book.take_crowded_out() == []
    book.start("d", T0 + 4)
    assert len(book) == 3
    # Ended as any signed-in session ends: said once (to audit), then remembered.
    assert book.take_crowded_out() == [Expired("b", Ended.CROWDED_OUT, first=True)]
    assert book.take_crowded_out() == []
    assert book.find(second.id, T0 + 5) == Expired("b", Ended.CROWDED_OUT)
    assert book.find(first.id, T0 + 5) is first


def test_sign_in_pages_never_crowd_out_signed_in_sessions() -> None:
    """Anyone can open the sign-in page: the anonymous sessions it starts have their own cap,
    so a flood of them forgets only each other, never a signed-in member of staff."""
    book = SessionBook(IDLE, max_sessions=3, max_anonymous=5)
    staff = [book.start(name, T0) for name in ("a", "b", "c")]
    waiting = book.start(None, T0)
    for i in range(1000):
        book.start(None, T0 + 1 + i)
    assert len(book) == 3 + 5
    assert all(book.find(s.id, T0 + 1000) is s for s in staff)
    assert book.take_crowded_out() == []
    assert book.find(waiting.id, T0 + 1000) is None  # the longest idle sign-in page went first


def test_ending_sessions() -> None:
    book = SessionBook(IDLE)
    one, two, other = (book.start(u, T0) for u in ("jsmith", "jsmith", "nurse.joy"))
    assert book.end(one.id) is one
    assert book.find(one.id, T0) is None
    assert book.end_user("jsmith") == [two]
    assert book.find(two.id, T0) is None
    assert book.find(other.id, T0) is other


def test_a_new_password_ends_the_sessions_begun_before_it() -> None:
    book = SessionBook(IDLE)
    before = [book.start("jsmith", T0), book.start("jsmith", T0 + 1)]
    other = book.start("nurse.joy", T0)
    after = book.start("jsmith", T0 + 2)
    assert book.end_begun_before("jsmith", T0 + 2, T0 + 3) == before
    assert book.end_begun_before("jsmith", T0 + 2, T0 + 3) == []
    for session in before:
        assert book.find(session.id, T0 + 4) == Expired("jsmith", Ended.PASSWORD_CHANGED)
    assert book.find(other.id, T0 + 4) is other
    assert book.find(after.id, T0 + 4) is after


def test_the_sweep_drops_ended_sessions_and_remembers_why_for_a_while() -> None:
    book = SessionBook(IDLE)
    idle = book.start("jsmith", T0)
    anonymous = book.start(None, T0)
    busy = book.start("nurse.joy", T0 + IDLE - 1)
    dropped = book.sweep(T0 + IDLE)
    assert dropped == [Expired("jsmith", Ended.IDLE, first=True)]
    assert book.find(idle.id, T0 + IDLE) == Expired("jsmith", Ended.IDLE)
    assert book.find(anonymous.id, T0 + IDLE) is anonymous
    assert book.find(busy.id, T0 + IDLE) is busy
    book.sweep(T0 + IDLE + 9 * 3600)
    assert book.find(idle.id, T0 + IDLE + 9 * 3600) is None


def test_failed_sign_ins_are_throttled_per_user() -> None:
    throttle = SignInThrottle()
    for i in range(PER_USER):
        assert throttle.wait("jsmith", f"10.0.0.{i}", T0 + i) == 0
        throttle.failed("jsmith", f"10.0.0.{i}", T0 + i)
    assert throttle.wait("jsmith", "10.0.0.99", T0 + PER_USER) == WINDOW - PER_USER
    assert throttle.wait("nurse.joy", "10.0.0.99", T0 + PER_USER) == 0
    assert throttle.wait("jsmith", "10.0.0.99", T0 + WINDOW) == 0  # the first failure left


def test_failed_sign_ins_are_throttled_per_address() -> None:
    throttle = SignInThrottle()
    for i in range(PER_ADDRESS):
        throttle.failed(f"user{i}", "10.0.0.7", T0)
    assert throttle.wait("someone-else", "10.0.0.7", T0 + 60) == WINDOW - 60
    assert throttle.wait("someone-else", "10.0.0.8", T0 + 60) == 0


def test_a_successful_sign_in_clears_the_name_but_not_the_address() -> None:
    throttle = SignInThrottle()
    for _ in range(PER_USER):
        throttle.failed("jsmith", "10.0.0.7", T0)
    throttle.succeeded("jsmith")
    assert throttle.wait("jsmith", "10.0.0.8", T0) == 0
    assert len(throttle.addresses) == 1


def test_sign_ins_under_way_count_as_failures_until_they_end() -> None:
    """Many attempts sent at once for one name all ask before any has failed: those already
    checking a password count, so no more are let through than the limit."""
    throttle = SignInThrottle()
    let_through = 0
    for i in range(3 * PER_USER):
        if throttle.wait("jsmith", f"10.0.0.{i}", T0) == 0:
            throttle.begin("jsmith", f"10.0.0.{i}")
            let_through += 1
    assert let_through == PER_USER
    for i in range(PER_USER):
        throttle.failed("jsmith", f"10.0.0.{i}", T0 + 1)
        throttle.ended("jsmith", f"10.0.0.{i}")
    assert throttle.wait("jsmith", "10.0.0.99", T0 + 1) == WINDOW


def test_a_sign_in_under_way_that_succeeds_no_longer_counts() -> None:
    throttle = SignInThrottle()
    for _ in range(PER_USER - 1):
        throttle.failed("jsmith", "10.0.0.7", T0)
    throttle.begin("jsmith", "10.0.0.7")
    assert throttle.wait("jsmith", "10.0.0.8", T0) > 0
    throttle.succeeded("jsmith")
    throttle.ended("jsmith", "10.0.0.7")
    assert throttle.wait("jsmith", "10.0.0.8", T0) == 0


def test_the_throttle_is_bounded_in_memory() -> None:
    window = Window(limit=3, max_keys=100)
    for i in range(1000):
        window.failed(f"guess-{i}", T0)
    assert len(window) == 100
    assert window.wait("guess-999", T0) == 0  # one failure only


def test_the_drawing_shows_every_way_a_session_ends() -> None:
    for why in Ended:
        assert f"signed_in --> ended: {why.value} (" in DRAWING
    hours = {"anonymous": ANONYMOUS_IDLE, "max-age": MAX_AGE}
    assert f"anonymous --> [*]: {hours['anonymous'] / 3600:g} hours unused" in DRAWING
    assert f"max-age ({hours['max-age'] / 3600:g} hours after sign-in)" in DRAWING
