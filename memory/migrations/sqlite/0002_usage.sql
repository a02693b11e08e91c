-- Tokens used per turn, for per-session and per-agent totals and budgets.
CREATE TABLE usage (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    session_key   TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    agent         TEXT NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX usage_by_agent ON usage (agent, created_at);
CREATE INDEX usage_by_session ON usage (session_key, created_at);
