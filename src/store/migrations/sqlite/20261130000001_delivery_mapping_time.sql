-- The time whose mapping versions render a delivery's body: NULL means
-- the message's received_at (the versions in force when it was accepted);
-- an operator's replay with the current mappings sets it to the replay time.
ALTER TABLE deliveries ADD COLUMN mapping_at INTEGER;
