-- trauma-relay metadata, version 4: failed guesses (wrong redemption proofs, phone links that
-- lead nowhere) by throttle key ("site:<name>", "address:<client address>", "global"), so the
-- guessing throttles count the failures every instance saw, not only its own. Rows older than
-- the throttles' window are deleted as new failures are counted.
CREATE TABLE guess_failures (
    key TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX guess_failures_by_key ON guess_failures (key, at DESC);
CREATE INDEX guess_failures_by_age ON guess_failures (at);
