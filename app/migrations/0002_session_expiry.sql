-- Sessions end on the server, not only when the browser drops the cookie: a stolen or
-- forgotten token stops working at `expires_at` (unix seconds). Sessions from before this
-- migration get the default lifetime (7 days) from their creation.
ALTER TABLE sessions ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET expires_at = created_at + 604800;
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions(expires_at);
