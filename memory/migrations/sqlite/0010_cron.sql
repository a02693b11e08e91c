-- Scheduled jobs: the config's (their definition stays in the config) and
-- those added at run time, with their state.
CREATE TABLE cron_jobs (
    name          TEXT PRIMARY KEY NOT NULL,
    source        TEXT NOT NULL,
    spec          TEXT,
    created_at    INTEGER NOT NULL,
    paused        INTEGER NOT NULL DEFAULT 0,
    paused_reason TEXT,
    failures      INTEGER NOT NULL DEFAULT 0
);

-- Every slot of every job, run, missed or skipped: at most one row per
-- (job, slot in UTC), so a slot runs at most once, ever.
CREATE TABLE cron_runs (
    job         TEXT NOT NULL,
    slot        INTEGER NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT,
    recorded_at INTEGER NOT NULL,
    finished_at INTEGER,
    PRIMARY KEY (job, slot)
);
