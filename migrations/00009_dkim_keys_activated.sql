-- +goose Up
-- The rotation loop asks every 30 s for active keys older than the
-- rotation interval, oldest first (store.RotationsDue). Through
-- dkim_keys_state it read every active key and sorted them: a second of
-- CPU on SQLite's one write connection at a million domains. This index
-- gives them in activation order, so the query stops at the first key
-- not yet due.
CREATE INDEX dkim_keys_state_activated ON dkim_keys(state, activated_at);

-- +goose Down
DROP INDEX dkim_keys_state_activated;
