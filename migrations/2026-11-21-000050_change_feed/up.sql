-- The change feed: every committed row change on a content table is announced
-- on the `nexora_changes` channel, so every API instance can invalidate the
-- cache tags it affects (writes made in psql, batch jobs and other services
-- included) and push new reviews to subscribers. NOTIFY is transactional:
-- listeners see a change only once it commits, and never a rolled-back one.
--
-- Payloads are small JSON objects: `table`, `op` and the ids the cache tags
-- need (the only text is a username, at most 30 characters by constraint),
-- far below pg_notify's 8000-byte limit. Updates that change nothing are not
-- announced (the WHEN clauses), so `nexora_recount()` only reports rows it
-- really corrected. TRUNCATE, which fires no row triggers, is announced once
-- per statement and makes listeners treat everything as changed.
--
-- `ALTER TABLE … DISABLE TRIGGER USER` (the seeder's bulk load) silences
-- these triggers too: changes made that way reach a cache only through an
-- instance (re)connecting its listener, which invalidates everything.

CREATE FUNCTION nexora_notify_change(payload jsonb) RETURNS void AS $$
    SELECT pg_notify('nexora_changes', payload::text);
$$ LANGUAGE sql;

-- a username for the payload, or null if (against the constraint) it could
-- push the payload near the limit; listeners then invalidate everything
CREATE FUNCTION nexora_feed_name(name TEXT) RETURNS TEXT AS $$
    SELECT CASE WHEN octet_length(name) <= 256 THEN name END;
$$ LANGUAGE sql IMMUTABLE;

CREATE FUNCTION nexora_reviews_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        PERFORM nexora_notify_change(jsonb_build_object(
            'table', 'reviews', 'op', TG_OP,
            'id', NEW.id, 'title_id', NEW.title_id, 'author_id', NEW.author_id,
            'old_title_id', OLD.title_id, 'old_author_id', OLD.author_id,
            'rating_changed', NEW.rating IS DISTINCT FROM OLD.rating,
            'likes_changed', NEW.like_count IS DISTINCT FROM OLD.like_count,
            -- moved between lists: another title or author, or another place in time order
            'moved', (NEW.title_id, NEW.author_id, NEW.created_at)
                     IS DISTINCT FROM (OLD.title_id, OLD.author_id, OLD.created_at)));
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM nexora_notify_change(jsonb_build_object(
            'table', 'reviews', 'op', TG_OP,
            'id', NEW.id, 'title_id', NEW.title_id, 'author_id', NEW.author_id));
    ELSE
        PERFORM nexora_notify_change(jsonb_build_object(
            'table', 'reviews', 'op', TG_OP,
            'id', OLD.id, 'title_id', OLD.title_id, 'author_id', OLD.author_id));
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION nexora_titles_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        PERFORM nexora_notify_change(jsonb_build_object(
            'table', 'titles', 'op', TG_OP, 'id', NEW.id,
            -- what title lists filter or order by (name, kind, year, genres, age)
            'listed', (NEW.name, NEW.kind, NEW.release_year, NEW.genres, NEW.created_at)
                      IS DISTINCT FROM (OLD.name, OLD.kind, OLD.release_year, OLD.genres, OLD.created_at),
            -- what the TOP_RATED / MOST_REVIEWED orders use
            'ranked', (NEW.review_count, NEW.rating_sum, NEW.avg_rating)
                      IS DISTINCT FROM (OLD.review_count, OLD.rating_sum, OLD.avg_rating)));
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM nexora_notify_change(jsonb_build_object('table', 'titles', 'op', TG_OP, 'id', NEW.id));
    ELSE
        PERFORM nexora_notify_change(jsonb_build_object('table', 'titles', 'op', TG_OP, 'id', OLD.id));
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION nexora_users_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        PERFORM nexora_notify_change(jsonb_build_object(
            'table', 'users', 'op', TG_OP, 'id', NEW.id,
            'username', nexora_feed_name(NEW.username),
            'old_username', nexora_feed_name(OLD.username)));
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM nexora_notify_change(jsonb_build_object(
            'table', 'users', 'op', TG_OP, 'id', NEW.id, 'username', nexora_feed_name(NEW.username)));
    ELSE
        PERFORM nexora_notify_change(jsonb_build_object(
            'table', 'users', 'op', TG_OP, 'id', OLD.id, 'username', nexora_feed_name(OLD.username)));
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION nexora_review_likes_changed() RETURNS trigger AS $$
BEGIN
    -- an UPDATE (rare, psql) is announced as the old like removed and the new
    -- one added; title_id is null when the review itself is being deleted
    -- (cascade), and the review's own DELETE then covers the title's lists
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM nexora_notify_change(jsonb_build_object(
            'table', 'review_likes', 'op', 'DELETE', 'review_id', OLD.review_id, 'user_id', OLD.user_id,
            'title_id', (SELECT title_id FROM reviews WHERE id = OLD.review_id)));
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM nexora_notify_change(jsonb_build_object(
            'table', 'review_likes', 'op', 'INSERT', 'review_id', NEW.review_id, 'user_id', NEW.user_id,
            'title_id', (SELECT title_id FROM reviews WHERE id = NEW.review_id)));
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION nexora_comments_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        PERFORM nexora_notify_change(jsonb_build_object(
            'table', 'comments', 'op', TG_OP, 'id', NEW.id,
            'review_id', NEW.review_id, 'author_id', NEW.author_id,
            'old_review_id', OLD.review_id));
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM nexora_notify_change(jsonb_build_object(
            'table', 'comments', 'op', TG_OP, 'id', NEW.id,
            'review_id', NEW.review_id, 'author_id', NEW.author_id));
    ELSE
        PERFORM nexora_notify_change(jsonb_build_object(
            'table', 'comments', 'op', TG_OP, 'id', OLD.id,
            'review_id', OLD.review_id, 'author_id', OLD.author_id));
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION nexora_follows_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM nexora_notify_change(jsonb_build_object(
            'table', 'follows', 'op', 'DELETE',
            'follower_id', OLD.follower_id, 'followee_id', OLD.followee_id));
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM nexora_notify_change(jsonb_build_object(
            'table', 'follows', 'op', 'INSERT',
            'follower_id', NEW.follower_id, 'followee_id', NEW.followee_id));
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION nexora_table_truncated() RETURNS trigger AS $$
BEGIN
    PERFORM nexora_notify_change(jsonb_build_object('table', TG_TABLE_NAME, 'op', TG_OP));
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- Two row triggers per table: a WHEN clause may not name OLD on INSERT or
-- NEW on DELETE, and only UPDATE needs one.
CREATE TRIGGER reviews_changed AFTER INSERT OR DELETE ON reviews
    FOR EACH ROW EXECUTE FUNCTION nexora_reviews_changed();
CREATE TRIGGER reviews_updated AFTER UPDATE ON reviews
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION nexora_reviews_changed();
CREATE TRIGGER reviews_truncated AFTER TRUNCATE ON reviews
    FOR EACH STATEMENT EXECUTE FUNCTION nexora_table_truncated();

CREATE TRIGGER titles_changed AFTER INSERT OR DELETE ON titles
    FOR EACH ROW EXECUTE FUNCTION nexora_titles_changed();
CREATE TRIGGER titles_updated AFTER UPDATE ON titles
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION nexora_titles_changed();
CREATE TRIGGER titles_truncated AFTER TRUNCATE ON titles
    FOR EACH STATEMENT EXECUTE FUNCTION nexora_table_truncated();

CREATE TRIGGER users_changed AFTER INSERT OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION nexora_users_changed();
CREATE TRIGGER users_updated AFTER UPDATE ON users
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION nexora_users_changed();
CREATE TRIGGER users_truncated AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION nexora_table_truncated();

CREATE TRIGGER review_likes_changed AFTER INSERT OR DELETE ON review_likes
    FOR EACH ROW EXECUTE FUNCTION nexora_review_likes_changed();
CREATE TRIGGER review_likes_updated AFTER UPDATE ON review_likes
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION nexora_review_likes_changed();
CREATE TRIGGER review_likes_truncated AFTER TRUNCATE ON review_likes
    FOR EACH STATEMENT EXECUTE FUNCTION nexora_table_truncated();

CREATE TRIGGER comments_changed AFTER INSERT OR DELETE ON comments
    FOR EACH ROW EXECUTE FUNCTION nexora_comments_changed();
CREATE TRIGGER comments_updated AFTER UPDATE ON comments
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION nexora_comments_changed();
CREATE TRIGGER comments_truncated AFTER TRUNCATE ON comments
    FOR EACH STATEMENT EXECUTE FUNCTION nexora_table_truncated();

CREATE TRIGGER follows_changed AFTER INSERT OR DELETE ON follows
    FOR EACH ROW EXECUTE FUNCTION nexora_follows_changed();
CREATE TRIGGER follows_updated AFTER UPDATE ON follows
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION nexora_follows_changed();
CREATE TRIGGER follows_truncated AFTER TRUNCATE ON follows
    FOR EACH STATEMENT EXECUTE FUNCTION nexora_table_truncated();
