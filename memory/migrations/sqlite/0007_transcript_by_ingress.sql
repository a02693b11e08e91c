-- The stored answer of an ingress row is looked up by the row (replay, the
-- sweep, repeated requests): without this, each lookup scans the transcript.
CREATE INDEX transcript_by_ingress ON transcript (ingress_id) WHERE ingress_id IS NOT NULL;
