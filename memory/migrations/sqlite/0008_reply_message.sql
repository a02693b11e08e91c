-- The platform message a row's reply is being edited into (its streamed
-- preview): a reply continued after a restart edits it instead of sending
-- a second message.
ALTER TABLE ingress ADD COLUMN reply_message_id TEXT;
