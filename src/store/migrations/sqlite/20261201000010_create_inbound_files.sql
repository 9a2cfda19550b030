-- Files taken from drop folders (`file` connectors): one row per processing
-- run of a file. A checksum recorded as `done` for a connector is never
-- submitted again. Times are Unix milliseconds.
CREATE TABLE inbound_files (
    id          TEXT    NOT NULL PRIMARY KEY,
    connector   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    sha256      TEXT    NOT NULL,
    size        BIGINT  NOT NULL,
    -- processing | done | failed | duplicate
    status      TEXT    NOT NULL,
    reason      TEXT,
    records     BIGINT  NOT NULL DEFAULT 0,
    committed   BIGINT  NOT NULL DEFAULT 0,
    refused     BIGINT  NOT NULL DEFAULT 0,
    started_at  BIGINT  NOT NULL,
    finished_at BIGINT
);
CREATE INDEX inbound_files_checksum ON inbound_files (connector, sha256, status);
CREATE INDEX inbound_files_started ON inbound_files (connector, started_at);
