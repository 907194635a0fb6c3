-- trauma-relay metadata, version 9: failed guesses (wrong redemption proofs, phone links that
-- lead nowhere) by throttle key ("site:<name>", "address:<client address>", "link:<client
-- address>", "global"), so that a restarted relay still holds back whoever guessed until the
-- throttles' window ends. Rows older than the window are deleted as new failures are counted.
CREATE TABLE guess_failures (
    key TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX guess_failures_by_key ON guess_failures (key, at DESC);
CREATE INDEX guess_failures_by_age ON guess_failures (at);
