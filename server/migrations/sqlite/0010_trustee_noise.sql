-- Tasks whose trustees draw the DP noise (docs/threshold.md, "Distributed
-- noise"). Keep in step with migrations/postgres.
--
-- The SHA-256 hashes of the trustees' tokens, 32 bytes per trustee in index
-- order (trustee 1 first); NULL for every other task. Hashes, not tokens:
-- nothing here lets the server, or a copy of this file, act as a trustee.
ALTER TABLE tasks ADD COLUMN trustee_token_hashes BLOB;

-- The encrypted, noise-free sum of a claimed release that waits for its
-- trustees' noise. Deleted in the transaction that finishes the release,
-- so no noise-free aggregate outlives it.
CREATE TABLE release_sums (
    task_id     BLOB    NOT NULL REFERENCES tasks (task_id),
    batch_start INTEGER NOT NULL,
    sum         BLOB    NOT NULL,
    computed_at INTEGER NOT NULL,
    PRIMARY KEY (task_id, batch_start)
);

-- The audit log of noise contributions: one row per trustee and release.
-- `contribution` (the encrypted shares) is cleared when the release is
-- finished; `digest` (SHA-256 of the uploaded file) stays, so that a trustee
-- resending the same file is answered as before.
CREATE TABLE noise_contributions (
    task_id      BLOB    NOT NULL REFERENCES tasks (task_id),
    batch_start  INTEGER NOT NULL,
    trustee      INTEGER NOT NULL,
    digest       BLOB    NOT NULL,
    contribution BLOB,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (task_id, batch_start, trustee)
);
