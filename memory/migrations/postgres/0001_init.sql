-- The PostgreSQL schema: the same tables as the SQLite store's migrations
-- 0001-0012 (see migrations/sqlite), written once for PostgreSQL. Times
-- are milliseconds since the Unix epoch (BIGINT), as in SQLite.

-- Sessions: one row per session key; `session_id` changes on /new and resets.
CREATE TABLE sessions (
    key            TEXT PRIMARY KEY,
    session_id     TEXT NOT NULL UNIQUE,
    agent          TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    last_active_at BIGINT NOT NULL,
    turns          BIGINT NOT NULL DEFAULT 0,
    -- Whose records the session's are (`<channel>:<sender id>`).
    subject        TEXT
);
CREATE INDEX sessions_by_subject ON sessions (subject) WHERE subject IS NOT NULL;
CREATE INDEX sessions_by_activity ON sessions (last_active_at DESC, key);

-- Transcript entries of every session generation.
CREATE TABLE transcript (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id  TEXT NOT NULL,
    role        TEXT NOT NULL,
    content     TEXT NOT NULL,
    ingress_id  BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX transcript_by_session ON transcript (session_id, seq);
CREATE INDEX transcript_by_age ON transcript (created_at);
CREATE INDEX transcript_by_ingress ON transcript (ingress_id) WHERE ingress_id IS NOT NULL;

-- The durable ingress queue, deduplicated by platform message id.
CREATE TABLE ingress (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel          TEXT NOT NULL,
    account          TEXT NOT NULL,
    message_id       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    error            TEXT,
    received_at      BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    reply_message_id TEXT,
    subject          TEXT,
    UNIQUE (channel, account, message_id)
);
CREATE INDEX ingress_by_status ON ingress (status, id);
CREATE INDEX ingress_by_age ON ingress (updated_at);
CREATE INDEX ingress_by_subject ON ingress (subject) WHERE subject IS NOT NULL;

-- Pending pairing requests of unknown DM senders.
CREATE TABLE pairing (
    channel     TEXT NOT NULL,
    account     TEXT NOT NULL,
    sender_id   TEXT NOT NULL,
    sender_name TEXT,
    chat_id     TEXT NOT NULL,
    code        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (channel, account, sender_id)
);
CREATE INDEX pairing_by_code ON pairing (channel, code);

-- Senders allowed to talk to the assistant, per channel account.
CREATE TABLE allowlist (
    channel     TEXT NOT NULL,
    account     TEXT NOT NULL,
    sender_id   TEXT NOT NULL,
    added_at    BIGINT NOT NULL,
    added_by    TEXT NOT NULL,
    PRIMARY KEY (channel, account, sender_id)
);

-- Tokens used per turn, and what they cost (millionths of a US dollar).
CREATE TABLE usage (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_key   TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    agent         TEXT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    cost_micros   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX usage_by_agent ON usage (agent, created_at);
CREATE INDEX usage_by_session ON usage (session_key, created_at);
CREATE INDEX usage_by_age ON usage (created_at);

-- Tool calls that waited for an operator's decision, and who decided.
CREATE TABLE approvals (
    id          TEXT COLLATE "C" PRIMARY KEY,
    session_key TEXT NOT NULL,
    agent       TEXT NOT NULL,
    tool        TEXT NOT NULL,
    arguments   TEXT NOT NULL,
    status      TEXT NOT NULL,
    decided_by  TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    decided_at  BIGINT
);
CREATE INDEX approvals_by_status ON approvals (status, created_at);

-- Small durable state of channel listeners, by channel account and key.
CREATE TABLE channel_state (
    channel    TEXT NOT NULL,
    account    TEXT NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (channel, account, key)
);

-- Long-term memory. `pos` keeps the order of insertion (SQLite's rowid).
CREATE TABLE memories (
    id         TEXT COLLATE "C" PRIMARY KEY,
    pos        BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    agent      TEXT NOT NULL,
    owner      TEXT NOT NULL,
    text       TEXT NOT NULL,
    tags       TEXT NOT NULL DEFAULT '[]',
    vector     TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX memories_by_scope ON memories (agent, owner, created_at);

-- Secrets config files name as "secret:NAME".
CREATE TABLE secrets (
    name       TEXT COLLATE "C" PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The store's own state: whether and under which keyring it is encrypted.
CREATE TABLE store_meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);

-- Scheduled jobs and every slot of every job (at most one row per slot).
CREATE TABLE cron_jobs (
    name          TEXT COLLATE "C" PRIMARY KEY,
    source        TEXT NOT NULL,
    spec          TEXT,
    created_at    BIGINT NOT NULL,
    paused        BOOLEAN NOT NULL DEFAULT FALSE,
    paused_reason TEXT,
    failures      BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE cron_runs (
    job         TEXT NOT NULL,
    slot        BIGINT NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT,
    recorded_at BIGINT NOT NULL,
    finished_at BIGINT,
    PRIMARY KEY (job, slot)
);

-- The audit log, signed and chained by the gateway; `seq` is the writer's.
CREATE TABLE audit (
    seq    BIGINT PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    source TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev   TEXT NOT NULL,
    mac    TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
CREATE TABLE audit_checkpoint (
    id     BIGINT PRIMARY KEY CHECK (id = 1),
    seq    BIGINT NOT NULL,
    mac    TEXT NOT NULL,
    at     BIGINT NOT NULL,
    checkpoint_mac TEXT NOT NULL
);
