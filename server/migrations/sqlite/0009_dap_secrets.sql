-- DAP task secrets encrypted at rest, and several HPKE configs per task
-- (issue 17). See server/src/datastore/crypter.rs.
--
-- `secrets_sealed` = 1: `vdaf_verify_key` holds the verification key sealed
-- with the datastore key, and `peer_auth_token` the leader's outgoing token
-- sealed and written as unpadded base64url. 0: a row from before this
-- migration, in plaintext; the server seals it on start
-- (`DapStore::secure_secrets`), moves its `hpke_keypair` into
-- `dap_hpke_keys` and empties that legacy column.
ALTER TABLE dap_tasks ADD COLUMN secrets_sealed INTEGER NOT NULL DEFAULT 0;

-- A task's HPKE key pairs. The one with `expires_at` NULL is active: it is
-- served by GET /dap/hpke_config. Rotated-out ones still decrypt until
-- `expires_at` (Unix seconds) and are then deleted; a report encrypted to
-- an id not here (or expired) is answered `outdatedConfig`. `keypair` is
-- the janus `HpkeKeypair` JSON, sealed with the datastore key (associated
-- data: table, column, task id and config id).
CREATE TABLE dap_hpke_keys (
    task_id     BLOB    NOT NULL REFERENCES dap_tasks (task_id),
    config_id   INTEGER NOT NULL CHECK (config_id BETWEEN 0 AND 255),
    keypair     BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    PRIMARY KEY (task_id, config_id)
);
