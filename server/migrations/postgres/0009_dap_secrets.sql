-- DAP task secrets encrypted at rest, and several HPKE configs per task;
-- see migrations/sqlite/0009_dap_secrets.sql for the comments.
ALTER TABLE dap_tasks ADD COLUMN secrets_sealed BIGINT NOT NULL DEFAULT 0;

CREATE TABLE dap_hpke_keys (
    task_id     BYTEA   NOT NULL REFERENCES dap_tasks (task_id),
    config_id   BIGINT  NOT NULL CHECK (config_id BETWEEN 0 AND 255),
    keypair     BYTEA   NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT,
    PRIMARY KEY (task_id, config_id)
);
