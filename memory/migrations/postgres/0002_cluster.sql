-- Replicas sharing one database: who is alive, who holds what.

-- Milliseconds since the epoch by the server's clock: every replica's
-- leases are measured against the one clock they share.
CREATE FUNCTION switchboard_now_ms() RETURNS BIGINT
    LANGUAGE sql VOLATILE
    AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT $$;

-- Each running gateway, renewed by its heartbeat.
CREATE TABLE replicas (
    id           TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    version      TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

-- Named leases (a channel account's listener, a session's turns): held by
-- one replica until `until_ms`, renewed by its heartbeat.
-- `token` names one taking of the lease, so that a late release of an
-- earlier taking does not end a newer one of the same holder.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    token       TEXT NOT NULL,
    acquired_at BIGINT NOT NULL,
    until_ms    BIGINT NOT NULL
);
CREATE INDEX leases_by_holder ON leases (holder);

-- Which replica owns a pending ingress row, and until when: rows of a
-- replica that stopped renewing are taken over by another.
ALTER TABLE ingress ADD COLUMN claimed_by TEXT, ADD COLUMN claim_until BIGINT;
CREATE INDEX ingress_claims ON ingress (claimed_by, claim_until) WHERE status = 'pending';
