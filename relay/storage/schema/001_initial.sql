-- trauma-relay metadata, version 1. Holds no PHI and no key: only site names, digests of
-- credentials and proofs, wrapped (encrypted) keys, sealed manifest records and audit records.
CREATE TABLE sites (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('sending', 'receiving')),
    display_name TEXT NOT NULL,
    credential_digest BLOB NOT NULL UNIQUE,
    created_at REAL NOT NULL
);

CREATE TABLE transfers (
    id TEXT PRIMARY KEY,
    sender TEXT NOT NULL REFERENCES sites (name),
    recipient TEXT NOT NULL REFERENCES sites (name),
    locator INTEGER NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    authorized_at REAL,
    authorized_by TEXT,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    redeemed_at REAL,
    delivered_at REAL,
    revoked_at REAL,
    -- sealed by the sender (reason, clinician); the relay knows only that break-glass was used
    break_glass_sealed BLOB,
    authorization_digest BLOB,
    manifest_closed INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,
    purged INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX transfers_by_locator ON transfers (recipient, locator, state);
CREATE INDEX transfers_by_expiry ON transfers (purged, expires_at);
CREATE UNIQUE INDEX transfers_by_authorization ON transfers (authorization_digest);

-- One row per way of unlocking the data key: 'code' (typed) and 'capability' (QR).
CREATE TABLE key_locks (
    transfer_id TEXT NOT NULL REFERENCES transfers (id),
    kind TEXT NOT NULL CHECK (kind IN ('code', 'capability')),
    salt BLOB NOT NULL,
    verifier BLOB NOT NULL,
    wrapped_key BLOB NOT NULL,
    PRIMARY KEY (transfer_id, kind)
);

CREATE TABLE objects (
    transfer_id TEXT NOT NULL REFERENCES transfers (id),
    idx INTEGER NOT NULL,
    durable_offset INTEGER NOT NULL DEFAULT 0,
    complete INTEGER NOT NULL DEFAULT 0,
    size INTEGER,
    sha256 TEXT,
    PRIMARY KEY (transfer_id, idx)
);

CREATE TABLE manifest_records (
    transfer_id TEXT NOT NULL REFERENCES transfers (id),
    seq INTEGER NOT NULL,
    final INTEGER NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (transfer_id, seq)
);

-- Append-only, hash-chained: each row's hash covers the previous row's hash.
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    event_id TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    transfer_id TEXT,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    remote TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
