-- Add/remove tasks release their report count with DP noise, never
-- exactly (docs/dp.md): the noisy count is stored next to the exact one
-- (which stays for the operator), and a release whose noisy count falls
-- outside the task's batch size limits is recorded as 'withheld': the
-- interval is closed, the budget spent, and no values are released.

ALTER TABLE releases ADD COLUMN noisy_report_count BIGINT;
ALTER TABLE releases DROP CONSTRAINT releases_state_check;
ALTER TABLE releases ADD CONSTRAINT releases_state_check
    CHECK (state IN ('pending', 'done', 'withheld'));
