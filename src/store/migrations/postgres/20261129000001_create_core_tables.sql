-- Messages, their deliveries and every attempt. Times are Unix milliseconds.
-- `seq` is the acceptance order; per (destination, subject) it is the
-- delivery order.
CREATE TABLE messages (
    seq             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    source          TEXT    NOT NULL,
    source_event_id TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    jurisdiction    TEXT    NOT NULL,
    event_time      TEXT    NOT NULL,
    received_at     BIGINT  NOT NULL,
    partner         TEXT    NOT NULL,
    routed          BIGINT  NOT NULL,
    event           TEXT    NOT NULL,
    UNIQUE (source, source_event_id)
);
CREATE INDEX messages_received_at ON messages (received_at);
CREATE INDEX messages_subject ON messages (subject, seq);
CREATE INDEX messages_type ON messages (type, seq);
CREATE INDEX messages_unrouted ON messages (seq) WHERE routed = 0;

CREATE TABLE deliveries (
    seq          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    message_id   TEXT    NOT NULL,
    destination  TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    -- 1 for the earliest active delivery of its (destination, subject) lane:
    -- the only one the claim may take.
    head         BIGINT  NOT NULL DEFAULT 0,
    active       BIGINT  NOT NULL,
    attempts     BIGINT  NOT NULL,
    due_at       BIGINT  NOT NULL,
    lease_owner  TEXT,
    lease_until  BIGINT,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    last_error   TEXT,
    receipt      TEXT
);
CREATE INDEX deliveries_lane ON deliveries (destination, subject, seq) WHERE active = 1;
CREATE INDEX deliveries_due ON deliveries (destination, due_at, seq) WHERE head = 1 AND status IN ('pending', 'retrying');
CREATE INDEX deliveries_message ON deliveries (message_id);
CREATE INDEX deliveries_lease ON deliveries (lease_until) WHERE status = 'in_flight';
CREATE INDEX deliveries_dead ON deliveries (destination, seq) WHERE status = 'dead';

-- Attempt ids are for display only, so they are not indexed.
CREATE TABLE attempts (
    seq              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT    NOT NULL,
    delivery_id      TEXT    NOT NULL,
    number           BIGINT  NOT NULL,
    started_at       BIGINT  NOT NULL,
    duration_ms      BIGINT  NOT NULL,
    http_status      BIGINT,
    outcome          TEXT    NOT NULL,
    error_class      TEXT,
    response_excerpt TEXT,
    node             TEXT    NOT NULL
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, started_at);
