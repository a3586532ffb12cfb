-- +goose Up
-- The DKIM keys of a domain (issue 13). The active key is also kept in the
-- domains.dkim_* columns, which the signer and the zone read as before;
-- this table adds the keys around it: next (published at the second
-- selector before it signs), retired (still published until
-- safe_to_remove_at so queued mail verifies), removed (history only).
-- A BYOK key (byok) is published by the customer on their own DNS, never
-- by the zone. Times are Unix milliseconds like the domains columns.
CREATE TABLE dkim_keys (
    id                TEXT PRIMARY KEY,
    domain_id         TEXT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    selector          TEXT NOT NULL,
    algorithm         TEXT NOT NULL,
    private_key       TEXT NOT NULL,
    txt               TEXT NOT NULL DEFAULT '',
    state             TEXT NOT NULL,
    byok              BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        BIGINT,
    activated_at      BIGINT,
    retired_at        BIGINT,
    safe_to_remove_at BIGINT
);
CREATE INDEX dkim_keys_domain ON dkim_keys(domain_id, state);
CREATE INDEX dkim_keys_state ON dkim_keys(state);

-- Every existing domain's key becomes its active key.
INSERT INTO dkim_keys (id, domain_id, selector, algorithm, private_key, txt, state, byok, created_at, activated_at)
SELECT 'k' || id, id, dkim_selector, dkim_algorithm, dkim_key, dkim_txt, 'active', FALSE, created_at, created_at FROM domains;

-- +goose Down
DROP TABLE dkim_keys;
