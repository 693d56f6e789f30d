-- Tasks whose trustees draw the DP noise; see
-- migrations/sqlite/0010_trustee_noise.sql for the comments.
ALTER TABLE tasks ADD COLUMN trustee_token_hashes BYTEA;

CREATE TABLE release_sums (
    task_id     BYTEA   NOT NULL REFERENCES tasks (task_id),
    batch_start BIGINT  NOT NULL,
    sum         BYTEA   NOT NULL,
    computed_at BIGINT  NOT NULL,
    PRIMARY KEY (task_id, batch_start)
);

CREATE TABLE noise_contributions (
    task_id      BYTEA   NOT NULL REFERENCES tasks (task_id),
    batch_start  BIGINT  NOT NULL,
    trustee      BIGINT  NOT NULL,
    digest       BYTEA   NOT NULL,
    contribution BYTEA,
    received_at  BIGINT  NOT NULL,
    PRIMARY KEY (task_id, batch_start, trustee)
);
