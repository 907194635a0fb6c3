-- trauma-relay metadata, version 3: the audit chain's last record read under the chain's lock in
-- one call, so appending a transaction's records costs one round trip less. The function takes
-- the transaction-scoped advisory lock the store names AUDIT_CHAIN_LOCK (its argument), then
-- reads the last record: a VOLATILE function's statements each take a fresh snapshot, so it sees
-- the records of the transaction that held the lock before it (committed before its release).
CREATE FUNCTION audit_chain_tail(chain_lock BIGINT, OUT last_seq BIGINT, OUT last_hash BYTEA)
    LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(chain_lock);
    SELECT a.seq, a.hash INTO last_seq, last_hash FROM audit a ORDER BY a.seq DESC LIMIT 1;
END;
$$;
