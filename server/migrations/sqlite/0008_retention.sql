-- Retention and garbage collection (issue 17).
--
-- Every HE task has a report expiry age: a report older than it is
-- refused at upload, and the garbage collector deletes the reports and
-- jobs of intervals older than it that were never released. It is an
-- operational setting, not part of the privacy definition, so it is a
-- column here and not a field of the definition (which is hashed into the
-- task id). Tasks created before this migration get the default, 7 days.
ALTER TABLE tasks ADD COLUMN report_expiry_age INTEGER NOT NULL DEFAULT 604800;

-- The garbage collector's lease (server/src/gc.rs): one row, leased
-- through server/src/lease.rs like any job, so that one replica at a time
-- runs the collector; next_attempt_at is when the next run is due.
CREATE TABLE gc_lease (
    id              INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    lease_token     BLOB,
    lease_expiry    INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    -- When the last run finished, Unix seconds (for operators).
    last_run_at     INTEGER
);
INSERT INTO gc_lease (id) VALUES (1);

-- The helper's replay table is deleted by time.
CREATE INDEX dap_helper_reports_by_time ON dap_helper_reports (task_id, time);
