-- The leader's report shares move to a table of their own. Putting a
-- report into an aggregation job (dap_reports.job_id) rewrote the whole
-- row, and with it the shares: 16 KB and more for a histogram of 1,024
-- buckets, written a second time for nothing. Now that update touches a
-- row of a few dozen bytes; the shares are written once, at upload.

CREATE TABLE dap_report_shares (
    task_id             BLOB    NOT NULL,
    report_id           BLOB    NOT NULL,
    public_share        BLOB    NOT NULL,
    -- Decrypted at upload.
    leader_input_share  BLOB    NOT NULL,
    -- The HPKE ciphertext the leader forwards to the helper.
    helper_encrypted    BLOB    NOT NULL,
    PRIMARY KEY (task_id, report_id),
    FOREIGN KEY (task_id, report_id) REFERENCES dap_reports (task_id, report_id)
);

INSERT INTO dap_report_shares (task_id, report_id, public_share, leader_input_share, helper_encrypted)
    SELECT task_id, report_id, public_share, leader_input_share, helper_encrypted FROM dap_reports;

ALTER TABLE dap_reports DROP COLUMN public_share;
ALTER TABLE dap_reports DROP COLUMN leader_input_share;
ALTER TABLE dap_reports DROP COLUMN helper_encrypted;
