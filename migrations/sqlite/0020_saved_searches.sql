-- Saved payment searches of the console (issue 19): per user, named, the list's query string
-- (filters and sort, never a cursor). A user sees and deletes only their own.
CREATE TABLE console_saved_searches (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES console_users (id),
    name TEXT NOT NULL,
    query TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (user_id, name)
);
