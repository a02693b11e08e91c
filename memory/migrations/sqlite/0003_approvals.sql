-- Tool calls that waited for an operator's decision, and who decided.
CREATE TABLE approvals (
    id          TEXT PRIMARY KEY NOT NULL,
    session_key TEXT NOT NULL,
    agent       TEXT NOT NULL,
    tool        TEXT NOT NULL,
    arguments   TEXT NOT NULL,
    status      TEXT NOT NULL,
    decided_by  TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    decided_at  INTEGER
);
CREATE INDEX approvals_by_status ON approvals (status, created_at);
