-- Bursts of video-AI alerts: one row per alert that was kept (the anchor of
-- its burst). A later alert with the same source, camera, event type and
-- subject whose started_at lies within the window of an anchor is not
-- stored; the anchor's `folded` counts it. Written in the group-commit
-- transaction of the alerts themselves, under a lock per burst key on
-- PostgreSQL. Pruned with the anchor message. Times are Unix milliseconds.
CREATE TABLE alert_bursts (
    message_id     TEXT   NOT NULL PRIMARY KEY,
    source         TEXT   NOT NULL,
    camera_id      TEXT   NOT NULL,
    event_type     TEXT   NOT NULL,
    subject        TEXT   NOT NULL,
    started_at     BIGINT NOT NULL,
    folded         BIGINT NOT NULL,
    last_folded_at BIGINT
);
CREATE INDEX alert_bursts_key ON alert_bursts (source, camera_id, event_type, subject, started_at);
