CREATE TABLE reviews (
    id                BIGSERIAL PRIMARY KEY,
    title_id          BIGINT NOT NULL,
    author_id         BIGINT NOT NULL,
    rating            SMALLINT NOT NULL,
    body              TEXT NOT NULL,
    contains_spoilers BOOLEAN NOT NULL DEFAULT false,
    like_count        INTEGER NOT NULL DEFAULT 0,
    comment_count     INTEGER NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT reviews_title_id_fkey FOREIGN KEY (title_id) REFERENCES titles (id) ON DELETE CASCADE,
    CONSTRAINT reviews_author_id_fkey FOREIGN KEY (author_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT reviews_rating_check CHECK (rating BETWEEN 1 AND 10),
    CONSTRAINT reviews_author_id_title_id_key UNIQUE (author_id, title_id)
);
CREATE INDEX reviews_newest_idx ON reviews (created_at DESC, id DESC);
CREATE INDEX reviews_title_newest_idx ON reviews (title_id, created_at DESC, id DESC);
CREATE INDEX reviews_title_most_liked_idx ON reviews (title_id, like_count DESC, id DESC);
CREATE INDEX reviews_author_newest_idx ON reviews (author_id, created_at DESC, id DESC);
