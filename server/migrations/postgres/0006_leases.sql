-- One lease implementation for every background job; see
-- migrations/sqlite/0006_leases.sql.

ALTER TABLE aggregation_jobs ADD COLUMN lease_token BYTEA;
ALTER TABLE aggregation_jobs ADD COLUMN next_attempt_at BIGINT;

ALTER TABLE dap_aggregation_jobs ADD COLUMN lease_token BYTEA;
ALTER TABLE dap_aggregation_jobs ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE dap_aggregation_jobs ADD COLUMN next_attempt_at BIGINT;

ALTER TABLE dap_collection_jobs ADD COLUMN lease_token BYTEA;
ALTER TABLE dap_collection_jobs ADD COLUMN lease_expiry BIGINT;
ALTER TABLE dap_collection_jobs ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE dap_collection_jobs ADD COLUMN next_attempt_at BIGINT;

ALTER TABLE dap_collection_jobs ADD COLUMN failure_code TEXT;
ALTER TABLE dap_collection_jobs ADD COLUMN failure_count BIGINT;
ALTER TABLE dap_collection_jobs ADD COLUMN failure_min BIGINT;
ALTER TABLE dap_collection_jobs ADD COLUMN failure_problem TEXT;

UPDATE dap_collection_jobs
    SET failure_code = 'invalid_batch_size',
        failure_count = CAST(substr(error, 18) AS BIGINT),
        failure_min = report_count,
        report_count = NULL,
        error = NULL
    WHERE state = 'failed' AND error LIKE 'invalidBatchSize:%';
UPDATE dap_collection_jobs
    SET failure_code = 'helper_refused',
        failure_problem = split_part(substr(error, 8), ' ', 1),
        error = CASE WHEN strpos(substr(error, 8), ' ') > 0
            THEN substr(error, 8 + strpos(substr(error, 8), ' ')) ELSE '' END
    WHERE state = 'failed' AND error LIKE 'helper:%';
UPDATE dap_collection_jobs SET failure_code = 'other'
    WHERE state = 'failed' AND failure_code IS NULL;
