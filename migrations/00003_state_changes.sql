-- +goose Up
-- The change log: every write that changes what the policy snapshot or the
-- DNS zone holds appends (version, org_id) in the same transaction, so each
-- instance reloads only the organizations that changed since its version.
-- zone is true when the provider zone's content may have changed; the
-- zone's SOA serial is the version of the last such change (zone_version),
-- the same on every instance.
CREATE TABLE state_changes (
    version BIGINT PRIMARY KEY,
    org_id  TEXT NOT NULL,
    zone    BOOLEAN NOT NULL DEFAULT FALSE,
    at      BIGINT NOT NULL
);
ALTER TABLE state_version ADD COLUMN zone_version BIGINT NOT NULL DEFAULT 1;
-- The public TXT value (v=DKIM1; k=...; p=...) stored at key creation, so
-- the zone never parses a private key; empty rows are filled at startup.
ALTER TABLE domains ADD COLUMN dkim_txt TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE domains DROP COLUMN dkim_txt;
ALTER TABLE state_version DROP COLUMN zone_version;
DROP TABLE state_changes;
