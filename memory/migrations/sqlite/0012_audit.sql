-- The audit log: security-relevant events (who, what, when, from where),
-- each signed with an HMAC chained to the one before it. Never encrypted:
-- it must stay verifiable, and it holds no message text and no secret.
-- `seq` is given by the writer (it is signed): a second writer that took
-- the same seq meanwhile fails on the primary key and signs again.
CREATE TABLE audit (
    seq    INTEGER PRIMARY KEY NOT NULL,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    source TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev   TEXT NOT NULL,
    mac    TEXT NOT NULL
);

CREATE INDEX audit_at ON audit (at);

-- Where the log starts once retention pruned its oldest records: the last
-- pruned record's seq and HMAC (the next record's `prev`), when it was
-- pruned, and an HMAC over the three. One row at most.
CREATE TABLE audit_checkpoint (
    id     INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq    INTEGER NOT NULL,
    mac    TEXT NOT NULL,
    at     INTEGER NOT NULL,
    checkpoint_mac TEXT NOT NULL
);
