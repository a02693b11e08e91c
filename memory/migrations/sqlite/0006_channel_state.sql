-- Small durable state of channel listeners, by channel account and key:
-- a Discord gateway session to resume (id, resume URL, last handled
-- sequence) and the last message stored per channel.
CREATE TABLE channel_state (
    channel    TEXT NOT NULL,
    account    TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (channel, account, key)
) WITHOUT ROWID;
