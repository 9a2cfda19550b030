-- Leases: a named, expiring claim held by one hub process (`server.node_id`).
-- A `poll` connector runs only on the holder of `poll:<connector>`. Taken
-- and renewed by one conditional upsert (free, expired, or already ours),
-- released on a clean stop; a dead holder's lease simply runs out.
-- Times are Unix milliseconds of the writing process's clock.
CREATE TABLE leases (
    name       TEXT   NOT NULL PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Where each `poll` connector is in its partner's collection. `cursor` is
-- what the run in progress (or the next run) sends; `page_token` the next
-- page of the run in progress (NULL between runs); `next_cursor` the latest
-- cursor a page of the run in progress pointed to, which becomes `cursor`
-- when the run ends. Written after each page is committed, and only by the
-- holder of the connector's lease.
CREATE TABLE poll_cursors (
    connector            TEXT   NOT NULL PRIMARY KEY,
    cursor               TEXT,
    page_token           TEXT,
    next_cursor          TEXT,
    updated_at           BIGINT NOT NULL,
    updated_by           TEXT   NOT NULL,
    run_started_at       BIGINT,
    last_run_started_at  BIGINT,
    last_run_finished_at BIGINT,
    last_run_pages       BIGINT NOT NULL DEFAULT 0,
    last_run_items       BIGINT NOT NULL DEFAULT 0,
    last_run_refused     BIGINT NOT NULL DEFAULT 0,
    -- The latest item refused for good (position, code, detail; never the body).
    last_refusal         TEXT,
    last_refusal_at      BIGINT
);
