-- Add/remove tasks release their report count with DP noise, never
-- exactly (docs/dp.md): the noisy count is stored next to the exact one
-- (which stays for the operator), and a release whose noisy count falls
-- outside the task's batch size limits is recorded as 'withheld': the
-- interval is closed, the budget spent, and no values are released.
--
-- SQLite cannot change a CHECK constraint in place, so the table is
-- rebuilt with the same rows. Nothing references releases.

CREATE TABLE releases_new (
    task_id            BLOB    NOT NULL REFERENCES tasks (task_id),
    batch_start        INTEGER NOT NULL,
    batch_duration     INTEGER NOT NULL,
    -- Exact; the operator's view only for add/remove tasks.
    report_count       INTEGER NOT NULL,
    -- Add/remove tasks: the report count as released, with noise.
    noisy_report_count INTEGER,
    state              TEXT    NOT NULL CHECK (state IN ('pending', 'done', 'withheld')),
    aggregate          BLOB,
    mechanism          TEXT    NOT NULL,
    cost               TEXT    NOT NULL,
    budget_spent_after TEXT    NOT NULL,
    requested_at       INTEGER NOT NULL,
    released_at        INTEGER,
    PRIMARY KEY (task_id, batch_start)
);

INSERT INTO releases_new (task_id, batch_start, batch_duration, report_count, state, aggregate,
                          mechanism, cost, budget_spent_after, requested_at, released_at)
    SELECT task_id, batch_start, batch_duration, report_count, state, aggregate,
           mechanism, cost, budget_spent_after, requested_at, released_at
    FROM releases;

DROP TABLE releases;
ALTER TABLE releases_new RENAME TO releases;
