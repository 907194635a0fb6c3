-- trauma-relay metadata, version 3: the digest (SHA-256) of the redemption id a receiving site
-- chose when it redeemed a transfer. The same site presenting the same id with a right proof
-- gets the same answer again, so a reply lost on its way to the trauma center does not strand
-- the transfer. NULL until redeemed, and for redemptions made without an id.
ALTER TABLE transfers ADD COLUMN redemption_digest BLOB;
