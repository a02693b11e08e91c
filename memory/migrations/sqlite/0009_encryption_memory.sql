-- Whose records a session and an ingress row are (`<channel>:<sender id>`):
-- their own key seals them, and `forget` finds them by it.
ALTER TABLE sessions ADD COLUMN subject TEXT;
ALTER TABLE ingress ADD COLUMN subject TEXT;
CREATE INDEX sessions_by_subject ON sessions (subject) WHERE subject IS NOT NULL;
CREATE INDEX ingress_by_subject ON ingress (subject) WHERE subject IS NOT NULL;

-- Long-term memory. Sealed, `text` holds the text, tags and vector
-- together and the other two stay empty.
CREATE TABLE memories (
    id         TEXT PRIMARY KEY NOT NULL,
    agent      TEXT NOT NULL,
    owner      TEXT NOT NULL,
    text       TEXT NOT NULL,
    tags       TEXT NOT NULL DEFAULT '[]',
    vector     TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX memories_by_scope ON memories (agent, owner, created_at);

-- Secrets config files name as "secret:NAME".
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- The store's own state: whether and under which keyring it is encrypted.
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
