CREATE TABLE users (
    id              BIGSERIAL PRIMARY KEY,
    -- stored lower-case, so uniqueness is case-insensitive without citext
    username        TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    bio             TEXT,
    password_hash   TEXT NOT NULL,
    role            TEXT NOT NULL DEFAULT 'MEMBER',
    review_count    INTEGER NOT NULL DEFAULT 0,
    follower_count  INTEGER NOT NULL DEFAULT 0,
    following_count INTEGER NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_username_format CHECK (username ~ '^[a-z0-9_]{3,30}$'),
    CONSTRAINT users_role_check CHECK (role IN ('MEMBER', 'ADMIN'))
);
