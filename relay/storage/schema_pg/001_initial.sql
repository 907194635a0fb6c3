-- trauma-relay metadata on PostgreSQL, version 1: the same tables, columns and rules as the
-- embedded SQLite schema at its version 7 (relay/storage/schema/001..007), in one step. Holds no
-- PHI and no key: only site names, digests of credentials and proofs, wrapped (encrypted) keys,
-- sealed manifest records and audit records. Flags stay integers (0/1) as in SQLite, times are
-- seconds since the epoch.
CREATE TABLE sites (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('sending', 'receiving')),
    display_name TEXT NOT NULL,
    credential_digest BYTEA NOT NULL UNIQUE,
    created_at DOUBLE PRECISION NOT NULL,
    disabled_at DOUBLE PRECISION,
    previous_credential_digest BYTEA,
    previous_until DOUBLE PRECISION
);
CREATE UNIQUE INDEX sites_previous_credential ON sites (previous_credential_digest)
    WHERE previous_credential_digest IS NOT NULL;

CREATE TABLE transfers (
    id TEXT PRIMARY KEY,
    sender TEXT NOT NULL REFERENCES sites (name),
    recipient TEXT NOT NULL REFERENCES sites (name),
    locator BIGINT NOT NULL,
    state TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    authorized_at DOUBLE PRECISION,
    authorized_by TEXT,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    redeemed_at DOUBLE PRECISION,
    delivered_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION,
    break_glass_sealed BYTEA,
    authorization_digest BYTEA,
    manifest_closed BIGINT NOT NULL DEFAULT 0,
    receipt TEXT,
    purged BIGINT NOT NULL DEFAULT 0,
    redemption_digest BYTEA,
    revoked_by TEXT CHECK (revoked_by IN ('patient', 'family', 'sending_site'))
);
CREATE INDEX transfers_by_locator ON transfers (recipient, locator, state);
CREATE INDEX transfers_by_expiry ON transfers (purged, expires_at);
CREATE UNIQUE INDEX transfers_by_authorization ON transfers (authorization_digest);

CREATE TABLE key_locks (
    transfer_id TEXT NOT NULL REFERENCES transfers (id),
    kind TEXT NOT NULL CHECK (kind IN ('code', 'capability')),
    salt BYTEA NOT NULL,
    verifier BYTEA NOT NULL,
    wrapped_key BYTEA NOT NULL,
    PRIMARY KEY (transfer_id, kind)
);

CREATE TABLE objects (
    transfer_id TEXT NOT NULL REFERENCES transfers (id),
    idx BIGINT NOT NULL,
    durable_offset BIGINT NOT NULL DEFAULT 0,
    complete BIGINT NOT NULL DEFAULT 0,
    size BIGINT,
    sha256 TEXT,
    PRIMARY KEY (transfer_id, idx)
);

CREATE TABLE manifest_records (
    transfer_id TEXT NOT NULL REFERENCES transfers (id),
    seq BIGINT NOT NULL,
    final BIGINT NOT NULL,
    record BYTEA NOT NULL,
    PRIMARY KEY (transfer_id, seq)
);

CREATE TABLE phone_blobs (
    transfer_id TEXT NOT NULL REFERENCES transfers (id),
    kind TEXT NOT NULL CHECK (kind IN ('summary', 'code', 'authorizer')),
    sealed BYTEA NOT NULL,
    PRIMARY KEY (transfer_id, kind)
);

CREATE TABLE cancelled_locks (
    transfer_id TEXT NOT NULL REFERENCES transfers (id),
    kind TEXT NOT NULL CHECK (kind IN ('code', 'capability')),
    salt BYTEA NOT NULL,
    verifier BYTEA NOT NULL,
    PRIMARY KEY (transfer_id, kind)
);

CREATE TABLE transfer_origins (
    transfer_id TEXT PRIMARY KEY REFERENCES transfers (id),
    sender_addresses TEXT NOT NULL DEFAULT '[]',
    consent_from_sender BIGINT NOT NULL DEFAULT 0
);

-- Append-only, hash-chained: each row's hash covers the previous row's hash. One chain for
-- every relay instance: an append takes the transaction-scoped advisory lock the store names
-- AUDIT_CHAIN_LOCK and numbers the record after the last one, so seq has no gaps.
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    event_id TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    transfer_id TEXT,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    remote TEXT NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash BYTEA NOT NULL
);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only';
END;
$$;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
