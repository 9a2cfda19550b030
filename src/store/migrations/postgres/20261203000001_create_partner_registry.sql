-- Cell platforms onboarded at run time through the admin API (issue:
-- partner lifecycle). Connector files stay the way to configure system
-- partners; this registry holds the many park and enterprise platforms.
-- Times are Unix milliseconds; lists and maps are JSON text.
CREATE TABLE partners (
    id             TEXT    NOT NULL PRIMARY KEY,
    name           TEXT    NOT NULL,
    division_code  TEXT    NOT NULL,
    source         TEXT    NOT NULL UNIQUE,
    message_types  TEXT    NOT NULL,
    mappings       TEXT    NOT NULL,
    -- sandbox | live | suspended
    status         TEXT    NOT NULL,
    -- the status a suspended partner returns to on resume
    resume_status  TEXT,
    signing        TEXT,
    signing_secret TEXT,
    callback_url   TEXT,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    live_at        BIGINT
);

-- API keys by SHA-256 (the key itself is shown once and never stored).
-- A rotated key keeps working until `expires_at`.
CREATE TABLE partner_keys (
    key_sha256  TEXT    NOT NULL PRIMARY KEY,
    partner_id  TEXT    NOT NULL,
    key_prefix  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT
);
CREATE INDEX partner_keys_partner ON partner_keys (partner_id);

-- Every change to a partner: who, what, when.
CREATE TABLE audit_log (
    id          TEXT    NOT NULL PRIMARY KEY,
    at          BIGINT  NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    partner_id  TEXT,
    detail      TEXT    NOT NULL
);
CREATE INDEX audit_log_partner ON audit_log (partner_id, at);

-- What sandbox partners sent: validated like production, answered, kept
-- here and never routed. Production tables never hold sandbox traffic.
CREATE TABLE sandbox_messages (
    id              TEXT    NOT NULL PRIMARY KEY,
    partner_id      TEXT    NOT NULL,
    received_at     BIGINT  NOT NULL,
    message_type    TEXT,
    source_event_id TEXT,
    http_status     INTEGER NOT NULL,
    -- accepted | rejected
    outcome         TEXT    NOT NULL,
    error_code      TEXT,
    errors          TEXT    NOT NULL,
    event           TEXT
);
CREATE INDEX sandbox_messages_partner ON sandbox_messages (partner_id, received_at);

-- Conformance runs: the verdict that go-live checks, and the report.
CREATE TABLE conformance_runs (
    id          TEXT    NOT NULL PRIMARY KEY,
    partner_id  TEXT    NOT NULL,
    at          BIGINT  NOT NULL,
    actor       TEXT    NOT NULL,
    passed      BOOLEAN NOT NULL,
    report      TEXT    NOT NULL
);
CREATE INDEX conformance_runs_partner ON conformance_runs (partner_id, at);
