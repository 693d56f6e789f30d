-- DAP-09 tasks (issue 6): the two-server Prio3 mode. Tables of their own,
-- beside the homomorphic backends' tables. Times are Unix seconds; DAP ids
-- are raw bytes (task 32, report 16, aggregation/collection job 16).

CREATE TABLE dap_tasks (
    task_id               BLOB    PRIMARY KEY NOT NULL,
    -- 'leader' or 'helper'.
    role                  TEXT    NOT NULL CHECK (role IN ('leader', 'helper')),
    -- Public parameters as JSON (VDAF, DP strategy, batch rules, peer URL,
    -- collector HPKE config).
    parameters            TEXT    NOT NULL,
    -- Secrets: the Prio3 verification key shared by both aggregators, this
    -- aggregator's HPKE key pair (JSON), and the token the leader presents
    -- to the helper (leader only). Incoming tokens are stored hashed.
    vdaf_verify_key       BLOB    NOT NULL,
    hpke_keypair          TEXT    NOT NULL,
    peer_auth_token       TEXT,
    aggregator_token_hash BLOB,
    collector_token_hash  BLOB,
    created_at            INTEGER NOT NULL
);

-- Leader: uploaded reports. The leader's input share is stored decrypted
-- (its HPKE ciphertext was opened at upload), the helper's as the HPKE
-- ciphertext the leader forwards. The primary key is the replay check.
CREATE TABLE dap_reports (
    task_id             BLOB    NOT NULL REFERENCES dap_tasks (task_id),
    report_id           BLOB    NOT NULL,
    time                INTEGER NOT NULL,
    public_share        BLOB    NOT NULL,
    leader_input_share  BLOB    NOT NULL,
    helper_encrypted    BLOB    NOT NULL,
    -- The aggregation job it was put in, once it was.
    job_id              BLOB,
    PRIMARY KEY (task_id, report_id)
);

CREATE INDEX dap_reports_by_time ON dap_reports (task_id, time);
CREATE INDEX dap_reports_unassigned ON dap_reports (task_id, time) WHERE job_id IS NULL;

-- Aggregation jobs of both roles. Leader: pending -> done, leased while
-- running. Helper: the request's hash and the response, so that a retried
-- PUT of the same job gets the same answer.
CREATE TABLE dap_aggregation_jobs (
    task_id      BLOB    NOT NULL REFERENCES dap_tasks (task_id),
    job_id       BLOB    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'done')),
    lease_expiry INTEGER,
    report_count INTEGER NOT NULL,
    request_hash BLOB,
    response     BLOB,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (task_id, job_id)
);

CREATE INDEX dap_aggregation_jobs_by_state ON dap_aggregation_jobs (state, lease_expiry);

-- Helper: report ids already aggregated (replay protection).
CREATE TABLE dap_helper_reports (
    task_id   BLOB    NOT NULL REFERENCES dap_tasks (task_id),
    report_id BLOB    NOT NULL,
    time      INTEGER NOT NULL,
    PRIMARY KEY (task_id, report_id)
);

-- Both roles: the sum of the output shares of each time-precision bucket,
-- with its report count and report-id checksum (XOR of SHA-256 of ids).
CREATE TABLE dap_batch_aggregations (
    task_id         BLOB    NOT NULL REFERENCES dap_tasks (task_id),
    bucket_start    INTEGER NOT NULL,
    aggregate_share BLOB    NOT NULL,
    report_count    INTEGER NOT NULL,
    checksum        BLOB    NOT NULL,
    PRIMARY KEY (task_id, bucket_start)
);

-- Leader: collection jobs. A job that is not 'failed' holds its interval:
-- no report can enter it and no other interval may overlap it.
CREATE TABLE dap_collection_jobs (
    task_id           BLOB    NOT NULL REFERENCES dap_tasks (task_id),
    collection_job_id BLOB    NOT NULL,
    batch_start       INTEGER NOT NULL,
    batch_duration    INTEGER NOT NULL,
    aggregation_param BLOB    NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN ('start', 'finished', 'failed', 'deleted')),
    report_count      INTEGER,
    leader_share      BLOB,
    helper_share      BLOB,
    error             TEXT,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (task_id, collection_job_id)
);

-- Helper: aggregate shares handed out, one per batch interval; the interval
-- is then closed to new reports and to overlapping queries.
CREATE TABLE dap_aggregate_shares (
    task_id           BLOB    NOT NULL REFERENCES dap_tasks (task_id),
    batch_start       INTEGER NOT NULL,
    batch_duration    INTEGER NOT NULL,
    aggregation_param BLOB    NOT NULL,
    report_count      INTEGER NOT NULL,
    checksum          BLOB    NOT NULL,
    encrypted_share   BLOB    NOT NULL,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (task_id, batch_start, batch_duration)
);
