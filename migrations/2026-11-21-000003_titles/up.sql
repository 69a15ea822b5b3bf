CREATE TABLE titles (
    id           BIGSERIAL PRIMARY KEY,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    release_year INTEGER,
    synopsis     TEXT,
    genres       TEXT[] NOT NULL DEFAULT '{}',
    review_count INTEGER NOT NULL DEFAULT 0,
    rating_sum   BIGINT NOT NULL DEFAULT 0,
    -- maintained with the two counters above so TOP_RATED can walk an index
    avg_rating   DOUBLE PRECISION,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT titles_kind_check CHECK (kind IN ('MOVIE', 'SERIES', 'MINISERIES', 'ANIME')),
    CONSTRAINT titles_release_year_check CHECK (release_year IS NULL OR release_year BETWEEN 1850 AND 2200)
);
-- one index per TitleOrder, each ending in id for a total keyset order
CREATE INDEX titles_name_idx ON titles (name, id);
CREATE INDEX titles_newest_idx ON titles (created_at DESC, id DESC);
CREATE INDEX titles_top_rated_idx ON titles (avg_rating DESC NULLS LAST, id DESC);
CREATE INDEX titles_most_reviewed_idx ON titles (review_count DESC, id DESC);
CREATE INDEX titles_genres_idx ON titles USING GIN (genres);
CREATE INDEX titles_name_trgm_idx ON titles USING GIN (name gin_trgm_ops);
