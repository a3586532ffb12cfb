-- +goose Up
CREATE TABLE orgs (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    sandbox_domain TEXT NOT NULL UNIQUE,
    created_at     BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    hash       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_keys_org ON api_keys(org_id);

CREATE TABLE smtp_accounts (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE domains (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    sandbox         BOOLEAN NOT NULL DEFAULT FALSE,
    token           TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL,
    return_path     TEXT NOT NULL DEFAULT '',
    tracking        TEXT NOT NULL DEFAULT '',
    dkim_selector   TEXT NOT NULL,
    dkim_algorithm  TEXT NOT NULL,
    dkim_key        TEXT NOT NULL,
    dmarc_policy    TEXT NOT NULL DEFAULT '',
    dmarc_rua       TEXT NOT NULL DEFAULT '',
    dmarc_pct       INTEGER NOT NULL DEFAULT 0,
    restricted      BOOLEAN NOT NULL DEFAULT FALSE,
    records         TEXT NOT NULL DEFAULT '[]',
    history         TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    verified_at     BIGINT,
    last_checked_at BIGINT,
    first_miss_at   BIGINT,
    UNIQUE (org_id, name)
);
CREATE INDEX domains_name ON domains(name);
-- One organization at a time may hold a name verified: the database, not
-- only a check before the update, refuses a second.
CREATE UNIQUE INDEX domains_verified_name ON domains(name) WHERE status IN ('verified', 'failing');

CREATE TABLE domain_grants (
    domain_id  TEXT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    account_id TEXT NOT NULL REFERENCES smtp_accounts(id) ON DELETE CASCADE,
    PRIMARY KEY (domain_id, account_id)
);
CREATE INDEX domain_grants_account ON domain_grants(account_id);

CREATE TABLE addresses (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    email            TEXT NOT NULL,
    domain           TEXT NOT NULL,
    status           TEXT NOT NULL,
    token_hash       TEXT NOT NULL DEFAULT '',
    token_expires_at BIGINT,
    resend_window    BIGINT,
    resend_count     INTEGER NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    confirmed_at     BIGINT,
    UNIQUE (org_id, email)
);
CREATE INDEX addresses_token ON addresses(token_hash);

CREATE TABLE events (
    id        TEXT PRIMARY KEY,
    org_id    TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    subject   TEXT NOT NULL,
    kind      TEXT NOT NULL,
    detail    TEXT NOT NULL DEFAULT '',
    at        BIGINT NOT NULL
);
CREATE INDEX events_subject ON events(org_id, subject, id);

CREATE TABLE sandbox_counts (
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    day    TEXT NOT NULL,
    count  BIGINT NOT NULL,
    PRIMARY KEY (org_id, day)
);

-- system_keys holds sendergate's own secrets shared by every instance,
-- such as the DKIM key of the provider zone that signs confirmation mail.
CREATE TABLE system_keys (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- state_version is bumped by every write that changes what the policy
-- snapshot or the DNS zone holds; every instance polls it to rebuild.
CREATE TABLE state_version (
    id      INTEGER PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO state_version (id, version) VALUES (1, 1);

-- +goose Down
DROP TABLE state_version;
DROP TABLE system_keys;
DROP TABLE sandbox_counts;
DROP TABLE events;
DROP TABLE addresses;
DROP TABLE domain_grants;
DROP TABLE domains;
DROP TABLE smtp_accounts;
DROP TABLE api_keys;
DROP TABLE orgs;
