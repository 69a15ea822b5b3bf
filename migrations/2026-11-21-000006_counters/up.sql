-- Counters the API shows are maintained here, in the writing transaction, so
-- reads never COUNT(*) big tables and writes made outside the API (psql,
-- batch jobs) keep them exact too. Row locks on the counted row serialize
-- concurrent increments, so N concurrent likes give exactly N.

-- Platform-wide totals (feed and titles totalCount without a scan).
CREATE TABLE platform_counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL DEFAULT 0
);
INSERT INTO platform_counters (name, value)
VALUES ('reviews', (SELECT count(*) FROM reviews)), ('titles', (SELECT count(*) FROM titles));

CREATE FUNCTION nexora_bump_platform(counter TEXT, delta BIGINT) RETURNS void AS $$
    UPDATE platform_counters SET value = value + delta WHERE name = counter;
$$ LANGUAGE sql;

CREATE FUNCTION nexora_title_rating(tid BIGINT, dcount INTEGER, dsum BIGINT) RETURNS void AS $$
    UPDATE titles
       SET review_count = review_count + dcount,
           rating_sum = rating_sum + dsum,
           avg_rating = CASE WHEN review_count + dcount > 0
                             THEN (rating_sum + dsum)::double precision / (review_count + dcount)
                        END
     WHERE id = tid;
$$ LANGUAGE sql;

CREATE FUNCTION nexora_reviews_counters() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM nexora_title_rating(NEW.title_id, 1, NEW.rating);
        UPDATE users SET review_count = review_count + 1 WHERE id = NEW.author_id;
        PERFORM nexora_bump_platform('reviews', 1);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM nexora_title_rating(OLD.title_id, -1, -OLD.rating);
        UPDATE users SET review_count = review_count - 1 WHERE id = OLD.author_id;
        PERFORM nexora_bump_platform('reviews', -1);
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.title_id <> OLD.title_id OR NEW.rating <> OLD.rating THEN
            PERFORM nexora_title_rating(OLD.title_id, -1, -OLD.rating);
            PERFORM nexora_title_rating(NEW.title_id, 1, NEW.rating);
        END IF;
        IF NEW.author_id <> OLD.author_id THEN
            UPDATE users SET review_count = review_count - 1 WHERE id = OLD.author_id;
            UPDATE users SET review_count = review_count + 1 WHERE id = NEW.author_id;
        END IF;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER reviews_counters AFTER INSERT OR DELETE OR UPDATE OF title_id, author_id, rating
    ON reviews FOR EACH ROW EXECUTE FUNCTION nexora_reviews_counters();

CREATE FUNCTION nexora_titles_counters() RETURNS trigger AS $$
BEGIN
    PERFORM nexora_bump_platform('titles', CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER titles_counters AFTER INSERT OR DELETE ON titles
    FOR EACH ROW EXECUTE FUNCTION nexora_titles_counters();

CREATE FUNCTION nexora_likes_counters() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE reviews SET like_count = like_count + 1 WHERE id = NEW.review_id;
    ELSE
        UPDATE reviews SET like_count = like_count - 1 WHERE id = OLD.review_id;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER review_likes_counters AFTER INSERT OR DELETE ON review_likes
    FOR EACH ROW EXECUTE FUNCTION nexora_likes_counters();

CREATE FUNCTION nexora_comments_counters() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE reviews SET comment_count = comment_count + 1 WHERE id = NEW.review_id;
    ELSE
        UPDATE reviews SET comment_count = comment_count - 1 WHERE id = OLD.review_id;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER comments_counters AFTER INSERT OR DELETE ON comments
    FOR EACH ROW EXECUTE FUNCTION nexora_comments_counters();

CREATE FUNCTION nexora_follows_counters() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE users SET following_count = following_count + 1 WHERE id = NEW.follower_id;
        UPDATE users SET follower_count = follower_count + 1 WHERE id = NEW.followee_id;
    ELSE
        UPDATE users SET following_count = following_count - 1 WHERE id = OLD.follower_id;
        UPDATE users SET follower_count = follower_count - 1 WHERE id = OLD.followee_id;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER follows_counters AFTER INSERT OR DELETE ON follows
    FOR EACH ROW EXECUTE FUNCTION nexora_follows_counters();

-- Recomputes every counter from the base tables: used after bulk loads that
-- run with triggers disabled, and as a repair tool.
CREATE FUNCTION nexora_recount() RETURNS void AS $$
BEGIN
    UPDATE titles t SET review_count = s.c, rating_sum = s.s,
                        avg_rating = CASE WHEN s.c > 0 THEN s.s::double precision / s.c END
      FROM (SELECT t2.id, count(r.id)::int AS c, coalesce(sum(r.rating), 0)::bigint AS s
              FROM titles t2 LEFT JOIN reviews r ON r.title_id = t2.id GROUP BY t2.id) s
     WHERE t.id = s.id;
    UPDATE users u SET review_count = coalesce(r.c, 0), follower_count = coalesce(fr.c, 0),
                       following_count = coalesce(fg.c, 0)
      FROM users u2
      LEFT JOIN (SELECT author_id, count(*)::int AS c FROM reviews GROUP BY author_id) r ON r.author_id = u2.id
      LEFT JOIN (SELECT followee_id, count(*)::int AS c FROM follows GROUP BY followee_id) fr ON fr.followee_id = u2.id
      LEFT JOIN (SELECT follower_id, count(*)::int AS c FROM follows GROUP BY follower_id) fg ON fg.follower_id = u2.id
     WHERE u.id = u2.id;
    UPDATE reviews rv SET like_count = coalesce(l.c, 0), comment_count = coalesce(c.c, 0)
      FROM reviews r2
      LEFT JOIN (SELECT review_id, count(*)::int AS c FROM review_likes GROUP BY review_id) l ON l.review_id = r2.id
      LEFT JOIN (SELECT review_id, count(*)::int AS c FROM comments GROUP BY review_id) c ON c.review_id = r2.id
     WHERE rv.id = r2.id;
    UPDATE platform_counters SET value = (SELECT count(*) FROM reviews) WHERE name = 'reviews';
    UPDATE platform_counters SET value = (SELECT count(*) FROM titles) WHERE name = 'titles';
END;
$$ LANGUAGE plpgsql;
