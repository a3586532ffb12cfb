-- +goose Up
-- Whether the active DKIM key mirrored in domains.dkim_* is a BYOK key
-- (issue 13): the customer publishes it on their own DNS, so the provider
-- zone must not serve it, while the signer uses it like any other.
ALTER TABLE domains ADD COLUMN dkim_byok BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE domains DROP COLUMN dkim_byok;
