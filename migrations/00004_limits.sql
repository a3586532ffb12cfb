-- +goose Up
-- Sending limits (recipients per minute, hour and day; 0 = none) set over
-- the API on an organization (account_id = '') or one of its SMTP
-- accounts. Without a row the [limits] defaults of the config apply.
CREATE TABLE sending_limits (
    org_id     TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    account_id TEXT NOT NULL DEFAULT '',
    per_minute BIGINT NOT NULL DEFAULT 0,
    per_hour   BIGINT NOT NULL DEFAULT 0,
    per_day    BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, account_id)
);

-- The shared recipient counters: one row per scope (account or
-- organization), window (minute, hour, day) and window start (Unix ms,
-- aligned to UTC). used is what instances have settled; leased is the
-- budget instances hold as slices (what they admitted but not yet settled
-- is inside it). An instance leases with used + leased + k <= limit, so
-- the total admitted in a window never passes the limit. refused counts
-- refused recipients; reached is set once per window by the instance that
-- records the limit.reached event. No foreign key: a counter of an
-- organization deleted meanwhile must not fail another instance's
-- settlement; rows go when their window has been over for two days.
CREATE TABLE limit_counters (
    scope     TEXT NOT NULL,
    scope_id  TEXT NOT NULL,
    win       TEXT NOT NULL,
    win_start BIGINT NOT NULL,
    org_id    TEXT NOT NULL,
    win_end   BIGINT NOT NULL,
    used      BIGINT NOT NULL DEFAULT 0,
    leased    BIGINT NOT NULL DEFAULT 0,
    refused   BIGINT NOT NULL DEFAULT 0,
    reached   BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (scope, scope_id, win, win_start)
);
CREATE INDEX limit_counters_org ON limit_counters(org_id, win_start);
CREATE INDEX limit_counters_end ON limit_counters(win_end);

-- +goose Down
DROP TABLE limit_counters;
DROP TABLE sending_limits;
