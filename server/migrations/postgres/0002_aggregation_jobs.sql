-- Aggregation jobs; see migrations/sqlite/0002_aggregation_jobs.sql.

CREATE TABLE aggregation_jobs (
    job_id       BIGSERIAL PRIMARY KEY,
    task_id      BYTEA   NOT NULL REFERENCES tasks (task_id),
    bucket_start BIGINT  NOT NULL,
    report_count BIGINT  NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'running', 'done')),
    lease_owner  TEXT,
    lease_expiry BIGINT,
    attempts     BIGINT  NOT NULL DEFAULT 0,
    partial_sum  BYTEA,
    created_at   BIGINT  NOT NULL,
    finished_at  BIGINT
);

CREATE INDEX aggregation_jobs_by_state ON aggregation_jobs (state, lease_expiry);
CREATE INDEX aggregation_jobs_by_bucket ON aggregation_jobs (task_id, bucket_start);

ALTER TABLE reports ADD COLUMN job_id BIGINT REFERENCES aggregation_jobs (job_id);
CREATE INDEX reports_by_job ON reports (job_id);
CREATE INDEX reports_unassigned ON reports (task_id, time) WHERE job_id IS NULL;
