-- Messages, their deliveries and every attempt. Times are Unix milliseconds.
-- `seq` is the acceptance order; per (destination, subject) it is the
-- delivery order.
CREATE TABLE messages (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    source          TEXT    NOT NULL,
    source_event_id TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    jurisdiction    TEXT    NOT NULL,
    event_time      TEXT    NOT NULL,
    received_at     INTEGER NOT NULL,
    partner         TEXT    NOT NULL,
    routed          INTEGER NOT NULL,
    event           TEXT    NOT NULL,
    UNIQUE (source, source_event_id)
);
CREATE INDEX messages_received_at ON messages (received_at);
CREATE INDEX messages_subject ON messages (subject, seq);
CREATE INDEX messages_type ON messages (type, seq);
CREATE INDEX messages_unrouted ON messages (seq) WHERE routed = 0;

CREATE TABLE deliveries (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    message_id   TEXT    NOT NULL,
    destination  TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    -- 1 for the earliest active delivery of its (destination, subject) lane:
    -- the only one the claim may take.
    head         INTEGER NOT NULL DEFAULT 0,
    active       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    due_at       INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    last_error   TEXT,
    receipt      TEXT
);
-- The ordering gate: the earliest active delivery of a (destination, subject).
CREATE INDEX deliveries_lane ON deliveries (destination, subject, seq) WHERE active = 1;
-- What a dispatcher may claim: lane heads that are due.
CREATE INDEX deliveries_due ON deliveries (destination, due_at, seq) WHERE head = 1 AND status IN ('pending', 'retrying');
CREATE INDEX deliveries_message ON deliveries (message_id);
CREATE INDEX deliveries_lease ON deliveries (lease_until) WHERE status = 'in_flight';
CREATE INDEX deliveries_dead ON deliveries (destination, seq) WHERE status = 'dead';

-- Attempt ids are for display only, so they are not indexed.
CREATE TABLE attempts (
    seq              INTEGER PRIMARY KEY,
    id               TEXT    NOT NULL,
    delivery_id      TEXT    NOT NULL,
    number           INTEGER NOT NULL,
    started_at       INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    http_status      INTEGER,
    outcome          TEXT    NOT NULL,
    error_class      TEXT,
    response_excerpt TEXT,
    node             TEXT    NOT NULL
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, started_at);
