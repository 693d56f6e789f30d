-- hetally schema, SQLite flavour. Times are Unix seconds; ids are raw bytes.

CREATE TABLE tasks (
    task_id              BLOB    PRIMARY KEY NOT NULL,
    -- Canonical task definition; its SHA-256 (with a domain tag) is task_id.
    definition           BLOB    NOT NULL,
    -- SHA-256 of the collector token; the token itself is never stored.
    collector_token_hash BLOB    NOT NULL,
    -- Privacy budget spent so far, an exact rational as text ("0", "4/5").
    budget_spent         TEXT    NOT NULL DEFAULT '0',
    created_at           INTEGER NOT NULL
);

CREATE TABLE reports (
    id        INTEGER PRIMARY KEY,
    task_id   BLOB    NOT NULL REFERENCES tasks (task_id),
    report_id BLOB    NOT NULL,
    time      INTEGER NOT NULL,
    -- Validated ciphertexts, in the backend's stored form.
    payload   BLOB    NOT NULL,
    -- Replay protection: a report id is accepted once per task.
    UNIQUE (task_id, report_id)
);

CREATE INDEX reports_by_time ON reports (task_id, time);

-- Releases are also the audit log: one row per batch, never deleted.
CREATE TABLE releases (
    task_id            BLOB    NOT NULL REFERENCES tasks (task_id),
    batch_start        INTEGER NOT NULL,
    batch_duration     INTEGER NOT NULL,
    report_count       INTEGER NOT NULL,
    -- 'pending' from the moment the batch is claimed (no report can enter
    -- it afterwards) until its aggregate is stored.
    state              TEXT    NOT NULL CHECK (state IN ('pending', 'done')),
    aggregate          BLOB,
    mechanism          TEXT    NOT NULL,
    cost               TEXT    NOT NULL,
    budget_spent_after TEXT    NOT NULL,
    requested_at       INTEGER NOT NULL,
    released_at        INTEGER,
    PRIMARY KEY (task_id, batch_start)
);
