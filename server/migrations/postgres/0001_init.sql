-- hetally schema, PostgreSQL flavour. Times are Unix seconds; ids are raw
-- bytes. Keep in step with migrations/sqlite: one datastore implementation
-- (server/src/datastore/sql.rs) runs on both.

CREATE TABLE tasks (
    task_id              BYTEA   PRIMARY KEY NOT NULL,
    definition           BYTEA   NOT NULL,
    collector_token_hash BYTEA   NOT NULL,
    budget_spent         TEXT    NOT NULL DEFAULT '0',
    created_at           BIGINT  NOT NULL
);

CREATE TABLE reports (
    id        BIGSERIAL PRIMARY KEY,
    task_id   BYTEA   NOT NULL REFERENCES tasks (task_id),
    report_id BYTEA   NOT NULL,
    time      BIGINT  NOT NULL,
    payload   BYTEA   NOT NULL,
    UNIQUE (task_id, report_id)
);

CREATE INDEX reports_by_time ON reports (task_id, time);

CREATE TABLE releases (
    task_id            BYTEA   NOT NULL REFERENCES tasks (task_id),
    batch_start        BIGINT  NOT NULL,
    batch_duration     BIGINT  NOT NULL,
    report_count       BIGINT  NOT NULL,
    state              TEXT    NOT NULL CHECK (state IN ('pending', 'done')),
    aggregate          BYTEA,
    mechanism          TEXT    NOT NULL,
    cost               TEXT    NOT NULL,
    budget_spent_after TEXT    NOT NULL,
    requested_at       BIGINT  NOT NULL,
    released_at        BIGINT,
    PRIMARY KEY (task_id, batch_start)
);
