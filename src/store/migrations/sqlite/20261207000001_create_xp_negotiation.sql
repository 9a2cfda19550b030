-- Cross-province transfer negotiation: one record per application (a JSON
-- document with a version for optimistic concurrency), its history (one row
-- per input, unique per hub message so a letter is never applied twice),
-- the signed letters exchanged with other provinces with their receipts (the
-- evidence), and the current whitelist entries.
CREATE TABLE xp_negotiations (
    application_no  TEXT    NOT NULL PRIMARY KEY,
    state           TEXT    NOT NULL,
    doc             TEXT    NOT NULL,
    version         BIGINT  NOT NULL,
    receiver_usci   TEXT,
    whitelist_key   TEXT,
    decision_year   INTEGER,
    approved_micro  BIGINT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
CREATE INDEX xp_negotiations_state ON xp_negotiations (state, application_no);
CREATE INDEX xp_negotiations_whitelist ON xp_negotiations (whitelist_key, decision_year);

CREATE TABLE xp_history (
    id              TEXT    NOT NULL PRIMARY KEY,
    application_no  TEXT    NOT NULL,
    message_id      TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    outcome         TEXT    NOT NULL,
    note            TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    emits           TEXT    NOT NULL,
    at              BIGINT  NOT NULL
);
CREATE UNIQUE INDEX xp_history_message ON xp_history (application_no, message_id);
CREATE INDEX xp_history_at ON xp_history (application_no, at, id);

CREATE TABLE xp_letters (
    letter_source   TEXT    NOT NULL,
    letter_id       TEXT    NOT NULL,
    direction       TEXT    NOT NULL,
    connector       TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    letter          TEXT    NOT NULL,
    receipt         TEXT,
    verdict         TEXT    NOT NULL,
    reason          TEXT,
    message_id      TEXT,
    at              BIGINT  NOT NULL,
    PRIMARY KEY (letter_source, letter_id)
);
CREATE INDEX xp_letters_subject ON xp_letters (subject, at);

CREATE TABLE xp_whitelist (
    scheme          TEXT    NOT NULL,
    whitelist_id    TEXT    NOT NULL,
    facility_usci   TEXT    NOT NULL,
    entry           TEXT    NOT NULL,
    event_time      TEXT    NOT NULL,
    event_millis    BIGINT  NOT NULL,
    message_id      TEXT    NOT NULL,
    updated_at      BIGINT  NOT NULL,
    PRIMARY KEY (scheme, whitelist_id)
);
CREATE INDEX xp_whitelist_facility ON xp_whitelist (facility_usci);
