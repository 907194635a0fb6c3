-- trauma-relay metadata, version 2: each transfer keeps the sum of its objects' acknowledged
-- bytes (objects.durable_offset), updated in the transaction that moves an object's offset, so
-- the quota checks on every chunk read one row instead of summing every object held.
ALTER TABLE transfers ADD COLUMN stored_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE transfers SET stored_bytes = (
    SELECT COALESCE(SUM(durable_offset), 0) FROM objects WHERE objects.transfer_id = transfers.id
);
CREATE INDEX transfers_by_sender ON transfers (sender, state);
