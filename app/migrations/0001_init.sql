-- Users exist by name once they sign in; sessions map a cookie token to a user.
CREATE TABLE IF NOT EXISTS sessions (
    token TEXT PRIMARY KEY NOT NULL,
    user_name TEXT NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (unixepoch())
);

CREATE TABLE IF NOT EXISTS rooms (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id INTEGER NOT NULL REFERENCES rooms(id),
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE INDEX IF NOT EXISTS messages_by_room ON messages(room_id, id);

CREATE TABLE IF NOT EXISTS follows (
    user_name TEXT NOT NULL,
    room_id INTEGER NOT NULL REFERENCES rooms(id),
    PRIMARY KEY (user_name, room_id)
);

CREATE TABLE IF NOT EXISTS mutes (
    user_name TEXT NOT NULL,
    room_id INTEGER NOT NULL REFERENCES rooms(id),
    PRIMARY KEY (user_name, room_id)
);

INSERT OR IGNORE INTO rooms (id, name) VALUES (1, 'general'), (2, 'random'), (3, 'rust');
