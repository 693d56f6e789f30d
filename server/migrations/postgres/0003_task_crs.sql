-- TFHE tasks with input proofs: the CRS (common reference string) the
-- clients prove against. The task definition records its SHA-256, so the
-- CRS served to clients is checked against the task id.
ALTER TABLE tasks ADD COLUMN crs BYTEA;
