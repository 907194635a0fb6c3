-- trauma-relay metadata, version 6: a site's life after `site add`.
-- disabled_at: when the operator disabled the site (`trauma-relay site disable`); its credential
--   is refused from then on, and a disabled trauma center is no longer a destination. NULL while
--   enabled.
-- previous_credential_digest, previous_until: after `trauma-relay site rotate --grace`, the old
--   credential keeps working until previous_until (seconds since the epoch); NULL otherwise.
ALTER TABLE sites ADD COLUMN disabled_at REAL;
ALTER TABLE sites ADD COLUMN previous_credential_digest BLOB;
ALTER TABLE sites ADD COLUMN previous_until REAL;
CREATE UNIQUE INDEX sites_previous_credential ON sites (previous_credential_digest)
    WHERE previous_credential_digest IS NOT NULL;
