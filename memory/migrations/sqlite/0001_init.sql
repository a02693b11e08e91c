-- Sessions: one row per session key; `session_id` changes on /new and resets.
CREATE TABLE sessions (
    key            TEXT PRIMARY KEY NOT NULL,
    session_id     TEXT NOT NULL UNIQUE,
    agent          TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    last_active_at INTEGER NOT NULL,
    turns          INTEGER NOT NULL DEFAULT 0
);

-- Transcript entries of every session generation.
CREATE TABLE transcript (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id  TEXT NOT NULL,
    role        TEXT NOT NULL,
    content     TEXT NOT NULL,
    ingress_id  INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE INDEX transcript_by_session ON transcript (session_id, seq);

-- The durable ingress queue, deduplicated by platform message id.
CREATE TABLE ingress (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    channel     TEXT NOT NULL,
    account     TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    received_at INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (channel, account, message_id)
);
CREATE INDEX ingress_by_status ON ingress (status, id);

-- Pending pairing requests of unknown DM senders.
CREATE TABLE pairing (
    channel     TEXT NOT NULL,
    account     TEXT NOT NULL,
    sender_id   TEXT NOT NULL,
    sender_name TEXT,
    chat_id     TEXT NOT NULL,
    code        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (channel, account, sender_id)
);
CREATE INDEX pairing_by_code ON pairing (channel, code);

-- Senders allowed to talk to the assistant, per channel account.
CREATE TABLE allowlist (
    channel     TEXT NOT NULL,
    account     TEXT NOT NULL,
    sender_id   TEXT NOT NULL,
    added_at    INTEGER NOT NULL,
    added_by    TEXT NOT NULL,
    PRIMARY KEY (channel, account, sender_id)
);
