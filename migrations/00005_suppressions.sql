-- +goose Up
-- The per-organization suppression list. email is the address lowercased
-- whole (as SES does), the domain in its IDNA A-label form. seq is a
-- monotonic change counter (from suppression_seq) set on every write, and
-- deleted a tombstone, so instances sync with "changes since seq N".
CREATE TABLE suppressions (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT '',
    diagnostic TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    count      BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT,
    seq        BIGINT NOT NULL,
    deleted    BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (org_id, email)
);
CREATE INDEX suppressions_seq ON suppressions(seq);

CREATE TABLE suppression_seq (
    id  INTEGER PRIMARY KEY,
    seq BIGINT NOT NULL
);
INSERT INTO suppression_seq (id, seq) VALUES (1, 0);

-- Soft bounces not yet suppressing: counted within suppression.soft_window.
CREATE TABLE soft_bounces (
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    email  TEXT NOT NULL,
    at     BIGINT NOT NULL
);
CREATE INDEX soft_bounces_email ON soft_bounces(org_id, email, at);

-- +goose Down
DROP TABLE soft_bounces;
DROP TABLE suppression_seq;
DROP TABLE suppressions;
