-- Retention prunes by age (`[retention]`): find old rows without reading
-- whole tables.
CREATE INDEX transcript_by_age ON transcript (created_at);
CREATE INDEX usage_by_age ON usage (created_at);
CREATE INDEX ingress_by_age ON ingress (updated_at);
