//! The tag vocabulary: what a cached result can depend on. Resolvers record
//! tags as they read; writes invalidate the tags of what they changed. Both
//! sides build tags only through these functions, so they cannot drift.
//!
//! | tag | recorded by | invalidated when |
//! |---|---|---|
//! | `Title:{id}` | a title (by id, in lists, as a review's title) | the title's fields or counters change (reviews added/removed/re-rated), it is created |
//! | `User:{id}` | a user | profile or counters change (reviews, follows) |
//! | `username:{name}` | `user(username:)` (also when not found) | a user with that name signs up |
//! | `Review:{id}` | a review, `viewerHasLiked` | the review is edited, liked, unliked, commented, deleted |
//! | `Comment:{id}` | a comment (which also records its review: deleting a review removes its comments) | it is deleted |
//! | `Title:{id}:reviews` | a title's review list | a review of the title is created, deleted, re-rated, liked (MOST_LIKED order) |
//! | `User:{id}:reviews` | a user's review list | the user creates or deletes a review |
//! | `Review:{id}:comments` | a review's comment list | a comment is added or deleted |
//! | `feed` | `feed`, `homeFeed` | any review is created or deleted |
//! | `follows:{id}` | `homeFeed`, `viewerIsFollowing` of viewer `id` | `id` follows or unfollows someone |
//! | `titles` | `titles` (any order) | a title is created |
//! | `titles:ranked` | `titles` ordered by TOP_RATED / MOST_REVIEWED | any review is created, deleted or re-rated |
//! | `trending` | `trendingTitles` | any review or like is added or removed |
//! | `counts` | platform totals (`feed.totalCount`, unfiltered `titles.totalCount`) | a review or title is created or deleted |

/// A title's fields and counters.
pub fn title(id: i64) -> String {
    format!("Title:{id}")
}
/// A user's profile and counters.
pub fn user(id: i64) -> String {
    format!("User:{id}")
}
/// Whether a username exists (and which user it is).
pub fn username(name: &str) -> String {
    // the only tag holding client input: a stored entry lists its tags
    // separated by whitespace, so whitespace (and `%`) is percent-encoded
    let mut tag = String::with_capacity(9 + name.len());
    tag.push_str("username:");
    for c in name.chars() {
        if c == '%' || c.is_ascii_whitespace() || c == '\x0b' {
            tag.push_str(&format!("%{:02X}", c as u32));
        } else {
            tag.push(c);
        }
    }
    tag
}
/// A review's fields and counters.
pub fn review(id: i64) -> String {
    format!("Review:{id}")
}
/// A comment.
pub fn comment(id: i64) -> String {
    format!("Comment:{id}")
}
/// The list of a title's reviews.
pub fn title_reviews(id: i64) -> String {
    format!("Title:{id}:reviews")
}
/// The list of a user's reviews.
pub fn user_reviews(id: i64) -> String {
    format!("User:{id}:reviews")
}
/// The list of a review's comments.
pub fn review_comments(id: i64) -> String {
    format!("Review:{id}:comments")
}
/// Who a user follows.
pub fn follows(id: i64) -> String {
    format!("follows:{id}")
}
/// All reviews, newest first (feed, home feeds).
pub const FEED: &str = "feed";
/// The title list.
pub const TITLES: &str = "titles";
/// Title list orders that move with reviews.
pub const TITLES_RANKED: &str = "titles:ranked";
/// Trending titles.
pub const TRENDING: &str = "trending";
/// Platform totals.
pub const COUNTS: &str = "counts";

/// What changes when a review is created or deleted.
pub fn review_written(review_id: i64, title_id: i64, author_id: i64) -> Vec<String> {
    vec![
        review(review_id),
        title(title_id),
        user(author_id),
        title_reviews(title_id),
        user_reviews(author_id),
        FEED.into(),
        TITLES_RANKED.into(),
        TRENDING.into(),
        COUNTS.into(),
    ]
}

/// What changes when a review's text or rating is edited.
pub fn review_edited(review_id: i64, title_id: i64, rating_changed: bool) -> Vec<String> {
    let mut tags = vec![review(review_id)];
    if rating_changed {
        tags.extend([
            title(title_id),
            title_reviews(title_id),
            TITLES_RANKED.into(),
        ]);
    }
    tags
}

/// What changes when a review is liked or unliked.
pub fn review_liked(review_id: i64, title_id: i64) -> Vec<String> {
    vec![review(review_id), title_reviews(title_id), TRENDING.into()]
}

/// What changes when a comment is added to or removed from a review.
pub fn comment_written(comment_id: i64, review_id: i64) -> Vec<String> {
    vec![
        comment(comment_id),
        review(review_id),
        review_comments(review_id),
    ]
}

/// What changes when `follower` follows or unfollows `followee`.
pub fn follow_changed(follower: i64, followee: i64) -> Vec<String> {
    vec![user(follower), user(followee), follows(follower)]
}

/// What changes when a title is created.
pub fn title_created(title_id: i64) -> Vec<String> {
    vec![title(title_id), TITLES.into(), COUNTS.into()]
}

/// What changes when a user signs up.
pub fn user_created(user_id: i64, name: &str) -> Vec<String> {
    vec![user(user_id), username(name)]
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_username_tag_is_one_word_whatever_was_asked() {
        assert_eq!(super::username("ada_l"), "username:ada_l");
        assert_eq!(super::username("a b\tc%"), "username:a%20b%09c%25");
        assert_eq!(super::username("x\u{0b}y"), "username:x%0By");
        assert!(!super::username("a\nb\rc d").contains(char::is_whitespace));
    }
}
