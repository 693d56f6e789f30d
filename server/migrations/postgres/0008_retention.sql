-- Retention and garbage collection; see migrations/sqlite/0008_retention.sql.
ALTER TABLE tasks ADD COLUMN report_expiry_age BIGINT NOT NULL DEFAULT 604800;

CREATE TABLE gc_lease (
    id              BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    lease_token     BYTEA,
    lease_expiry    BIGINT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_run_at     BIGINT
);
INSERT INTO gc_lease (id) VALUES (1);

CREATE INDEX dap_helper_reports_by_time ON dap_helper_reports (task_id, time);
