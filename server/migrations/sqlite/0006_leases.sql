-- One lease implementation for every background job (server/src/lease.rs):
-- a random token per lease, checked by the transaction that finishes the
-- job (a holder whose lease was taken over discards its work), an attempt
-- count, and the time of the next attempt (exponential backoff after a
-- failure).

ALTER TABLE aggregation_jobs ADD COLUMN lease_token BLOB;
ALTER TABLE aggregation_jobs ADD COLUMN next_attempt_at INTEGER;

ALTER TABLE dap_aggregation_jobs ADD COLUMN lease_token BLOB;
ALTER TABLE dap_aggregation_jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dap_aggregation_jobs ADD COLUMN next_attempt_at INTEGER;

-- Leader collection jobs are leased too: a collection the helper cannot
-- finish now is retried later, at growing intervals, and never holds up
-- the others.
ALTER TABLE dap_collection_jobs ADD COLUMN lease_token BLOB;
ALTER TABLE dap_collection_jobs ADD COLUMN lease_expiry INTEGER;
ALTER TABLE dap_collection_jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dap_collection_jobs ADD COLUMN next_attempt_at INTEGER;

-- A failed collection job's failure, as typed fields rather than a string
-- to parse back: its kind, the batch's report count and the task's
-- minimum (invalid_batch_size), the DAP problem type the helper answered
-- (helper_refused); `error` keeps the detail text.
ALTER TABLE dap_collection_jobs ADD COLUMN failure_code TEXT;
ALTER TABLE dap_collection_jobs ADD COLUMN failure_count INTEGER;
ALTER TABLE dap_collection_jobs ADD COLUMN failure_min INTEGER;
ALTER TABLE dap_collection_jobs ADD COLUMN failure_problem TEXT;

-- Failures recorded by earlier builds, as they wrote them:
-- "invalidBatchSize:<count>" with the minimum in report_count, and
-- "helper:<problem type URI> <detail>".
UPDATE dap_collection_jobs
    SET failure_code = 'invalid_batch_size',
        failure_count = CAST(substr(error, 18) AS INTEGER),
        failure_min = report_count,
        report_count = NULL,
        error = NULL
    WHERE state = 'failed' AND error LIKE 'invalidBatchSize:%';
UPDATE dap_collection_jobs
    SET failure_code = 'helper_refused',
        failure_problem = CASE WHEN instr(substr(error, 8), ' ') > 0
            THEN substr(error, 8, instr(substr(error, 8), ' ') - 1) ELSE substr(error, 8) END,
        error = CASE WHEN instr(substr(error, 8), ' ') > 0
            THEN substr(error, 8 + instr(substr(error, 8), ' ')) ELSE '' END
    WHERE state = 'failed' AND error LIKE 'helper:%';
UPDATE dap_collection_jobs SET failure_code = 'other'
    WHERE state = 'failed' AND failure_code IS NULL;
