-- See migrations/sqlite/0005_dap_report_shares.sql for the comments.

CREATE TABLE dap_report_shares (
    task_id             BYTEA   NOT NULL,
    report_id           BYTEA   NOT NULL,
    public_share        BYTEA   NOT NULL,
    leader_input_share  BYTEA   NOT NULL,
    helper_encrypted    BYTEA   NOT NULL,
    PRIMARY KEY (task_id, report_id),
    FOREIGN KEY (task_id, report_id) REFERENCES dap_reports (task_id, report_id)
);

INSERT INTO dap_report_shares (task_id, report_id, public_share, leader_input_share, helper_encrypted)
    SELECT task_id, report_id, public_share, leader_input_share, helper_encrypted FROM dap_reports;

ALTER TABLE dap_reports DROP COLUMN public_share;
ALTER TABLE dap_reports DROP COLUMN leader_input_share;
ALTER TABLE dap_reports DROP COLUMN helper_encrypted;
