-- DAP-09 tables; see migrations/sqlite/0010_dap.sql for the comments.
-- beside the homomorphic backends' tables. Times are Unix seconds; DAP ids
-- are raw bytes (task 32, report 16, aggregation/collection job 16).

CREATE TABLE dap_tasks (
    task_id               BYTEA    PRIMARY KEY NOT NULL,
    -- 'leader' or 'helper'.
    role                  TEXT    NOT NULL CHECK (role IN ('leader', 'helper')),
    -- Public parameters as JSON (VDAF, DP strategy, batch rules, peer URL,
    -- collector HPKE config).
    parameters            TEXT    NOT NULL,
    -- Secrets: the Prio3 verification key shared by both aggregators, this
    -- aggregator's HPKE key pair (JSON), and the token the leader presents
    -- to the helper (leader only). Incoming tokens are stored hashed.
    vdaf_verify_key       BYTEA    NOT NULL,
    hpke_keypair          TEXT    NOT NULL,
    peer_auth_token       TEXT,
    aggregator_token_hash BYTEA,
    collector_token_hash  BYTEA,
    created_at            BIGINT NOT NULL
);

-- Leader: uploaded reports. The leader's input share is stored decrypted
-- (its HPKE ciphertext was opened at upload), the helper's as the HPKE
-- ciphertext the leader forwards. The primary key is the replay check.
CREATE TABLE dap_reports (
    task_id             BYTEA    NOT NULL REFERENCES dap_tasks (task_id),
    report_id           BYTEA    NOT NULL,
    time                BIGINT NOT NULL,
    public_share        BYTEA    NOT NULL,
    leader_input_share  BYTEA    NOT NULL,
    helper_encrypted    BYTEA    NOT NULL,
    -- The aggregation job it was put in, once it was.
    job_id              BYTEA,
    PRIMARY KEY (task_id, report_id)
);

CREATE INDEX dap_reports_by_time ON dap_reports (task_id, time);
CREATE INDEX dap_reports_unassigned ON dap_reports (task_id, time) WHERE job_id IS NULL;

-- Aggregation jobs of both roles. Leader: pending -> done, leased while
-- running. Helper: the request's hash and the response, so that a retried
-- PUT of the same job gets the same answer.
CREATE TABLE dap_aggregation_jobs (
    task_id      BYTEA    NOT NULL REFERENCES dap_tasks (task_id),
    job_id       BYTEA    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'done')),
    lease_expiry BIGINT,
    report_count BIGINT NOT NULL,
    request_hash BYTEA,
    response     BYTEA,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (task_id, job_id)
);

CREATE INDEX dap_aggregation_jobs_by_state ON dap_aggregation_jobs (state, lease_expiry);

-- Helper: report ids already aggregated (replay protection).
CREATE TABLE dap_helper_reports (
    task_id   BYTEA    NOT NULL REFERENCES dap_tasks (task_id),
    report_id BYTEA    NOT NULL,
    time      BIGINT NOT NULL,
    PRIMARY KEY (task_id, report_id)
);

-- Both roles: the sum of the output shares of each time-precision bucket,
-- with its report count and report-id checksum (XOR of SHA-256 of ids).
CREATE TABLE dap_batch_aggregations (
    task_id         BYTEA    NOT NULL REFERENCES dap_tasks (task_id),
    bucket_start    BIGINT NOT NULL,
    aggregate_share BYTEA    NOT NULL,
    report_count    BIGINT NOT NULL,
    checksum        BYTEA    NOT NULL,
    PRIMARY KEY (task_id, bucket_start)
);

-- Leader: collection jobs. A job that is not 'failed' holds its interval:
-- no report can enter it and no other interval may overlap it.
CREATE TABLE dap_collection_jobs (
    task_id           BYTEA    NOT NULL REFERENCES dap_tasks (task_id),
    collection_job_id BYTEA    NOT NULL,
    batch_start       BIGINT NOT NULL,
    batch_duration    BIGINT NOT NULL,
    aggregation_param BYTEA    NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN ('start', 'finished', 'failed', 'deleted')),
    report_count      BIGINT,
    leader_share      BYTEA,
    helper_share      BYTEA,
    error             TEXT,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (task_id, collection_job_id)
);

-- Helper: aggregate shares handed out, one per batch interval; the interval
-- is then closed to new reports and to overlapping queries.
CREATE TABLE dap_aggregate_shares (
    task_id           BYTEA    NOT NULL REFERENCES dap_tasks (task_id),
    batch_start       BIGINT NOT NULL,
    batch_duration    BIGINT NOT NULL,
    aggregation_param BYTEA    NOT NULL,
    report_count      BIGINT NOT NULL,
    checksum          BYTEA    NOT NULL,
    encrypted_share   BYTEA    NOT NULL,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (task_id, batch_start, batch_duration)
);
