-- +goose Up
-- A full load reads every published key besides the active ones
-- (store.stateKeyWhere). Through dkim_keys_state_activated each of them
-- was a lookup into the table, whose rows hold the private keys: at a
-- million RSA-2048 domains on SQLite, 4.4 s of a 22 s cold start. This
-- partial index holds what the zone needs of exactly those keys, so the
-- read is an index-only scan (state and byok lead, so that planners
-- without statistics choose it over the other state indexes).
CREATE INDEX dkim_keys_published ON dkim_keys(state, byok, domain_id, selector, txt)
    WHERE state IN ('next', 'retired') AND byok = FALSE;

-- +goose Down
DROP INDEX dkim_keys_published;
