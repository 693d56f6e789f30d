-- Aggregation jobs: replicas sum disjoint sets of reports in the
-- background and store partial encrypted sums that releases merge.
-- Every report of a job has the same time (one time-precision bucket), so
-- any aligned batch interval holds whole jobs.

CREATE TABLE aggregation_jobs (
    job_id       INTEGER PRIMARY KEY,
    task_id      BLOB    NOT NULL REFERENCES tasks (task_id),
    bucket_start INTEGER NOT NULL,
    report_count INTEGER NOT NULL,
    -- pending -> running (leased to one replica) -> done. A running job
    -- whose lease has expired is claimed again by any replica.
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'running', 'done')),
    lease_owner  TEXT,
    lease_expiry INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0,
    partial_sum  BLOB,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER
);

CREATE INDEX aggregation_jobs_by_state ON aggregation_jobs (state, lease_expiry);
CREATE INDEX aggregation_jobs_by_bucket ON aggregation_jobs (task_id, bucket_start);

ALTER TABLE reports ADD COLUMN job_id INTEGER REFERENCES aggregation_jobs (job_id);
CREATE INDEX reports_by_job ON reports (job_id);
CREATE INDEX reports_unassigned ON reports (task_id, time) WHERE job_id IS NULL;
