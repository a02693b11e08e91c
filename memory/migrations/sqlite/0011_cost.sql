-- What each turn cost, in millionths of a US dollar (0 when no pricing was configured).
ALTER TABLE usage ADD COLUMN cost_micros INTEGER NOT NULL DEFAULT 0;
