-- +goose Up
-- next_check_at (Unix ms) is when the background checker next looks at a
-- domain, NULL for never (sandbox domains, pending ones past dns.grace).
-- It is also the checker's lease: an instance takes a due row by moving it
-- a few minutes ahead, so a crashed instance's rows come due again.
ALTER TABLE domains ADD COLUMN next_check_at BIGINT;

-- Existing rows come due at their last check (or creation). The first
-- pass of the checker re-plans each from its lifecycle state, without a
-- DNS query when it is not due yet, and spreads them by jitter.
UPDATE domains SET next_check_at = COALESCE(last_checked_at, created_at) WHERE sandbox = FALSE;

CREATE INDEX domains_next_check ON domains(next_check_at);

-- +goose Down
DROP INDEX domains_next_check;
ALTER TABLE domains DROP COLUMN next_check_at;
