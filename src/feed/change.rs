//! One change-feed notification: the payload the triggers of
//! `migrations/2026-11-21-000050_change_feed` send, and what it invalidates.
//!
//! The mapping builds tags only from [`crate::cache::tags`], and for a change
//! made through the API it yields the same tags the mutation invalidates (or
//! fewer), so the feed never makes the cache colder than the writes do. When a
//! payload cannot be understood, the answer is "everything changed": a cache
//! may be cold, never stale.

use serde::Deserialize;

use super::ReviewAdded;
use crate::cache::tags;

/// What a committed row change invalidates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// These tags (possibly none).
    Tags(Vec<String>),
    /// Anything may have changed (TRUNCATE, unknown table, unreadable payload).
    Everything,
}

/// The operation that changed a row.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Op {
    /// A row was added.
    Insert,
    /// A row was changed.
    Update,
    /// A row was removed.
    Delete,
    /// The whole table was emptied.
    Truncate,
}

fn changed() -> bool {
    // a flag missing from an UPDATE payload is read as "it changed"
    true
}

/// A committed change of one row (or, for TRUNCATE, of a whole table).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Change {
    /// The table written.
    pub table: String,
    /// What happened to the row.
    pub op: Op,
    /// The row's id (reviews, titles, users, comments).
    #[serde(default)]
    pub id: Option<i64>,
    /// The review's title.
    #[serde(default)]
    pub title_id: Option<i64>,
    /// The review's or comment's author.
    #[serde(default)]
    pub author_id: Option<i64>,
    /// Before an UPDATE: the review's title.
    #[serde(default)]
    pub old_title_id: Option<i64>,
    /// Before an UPDATE: the review's author.
    #[serde(default)]
    pub old_author_id: Option<i64>,
    /// The liked or commented review.
    #[serde(default)]
    pub review_id: Option<i64>,
    /// Before an UPDATE: the comment's review.
    #[serde(default)]
    pub old_review_id: Option<i64>,
    /// The user who liked.
    #[serde(default)]
    pub user_id: Option<i64>,
    /// Who follows.
    #[serde(default)]
    pub follower_id: Option<i64>,
    /// Who is followed.
    #[serde(default)]
    pub followee_id: Option<i64>,
    /// The user's name.
    #[serde(default)]
    pub username: Option<String>,
    /// Before an UPDATE: the user's name.
    #[serde(default)]
    pub old_username: Option<String>,
    /// A review UPDATE changed the rating.
    #[serde(default = "changed")]
    pub rating_changed: bool,
    /// A review UPDATE changed the like count.
    #[serde(default = "changed")]
    pub likes_changed: bool,
    /// A review UPDATE moved it to another title, author or time.
    #[serde(default = "changed")]
    pub moved: bool,
    /// A title UPDATE changed what title lists filter or order by.
    #[serde(default = "changed")]
    pub listed: bool,
    /// A title UPDATE changed its review counters or average.
    #[serde(default = "changed")]
    pub ranked: bool,
}

impl Change {
    /// Parses a notification payload; `None` when it is not one of ours.
    pub fn parse(payload: &str) -> Option<Self> {
        serde_json::from_str(payload).ok()
    }

    /// The review this change created, for `reviewAdded` subscribers.
    pub fn review_added(&self) -> Option<ReviewAdded> {
        match (self.table.as_str(), self.op, self.id, self.title_id) {
            ("reviews", Op::Insert, Some(review_id), Some(title_id)) => Some(ReviewAdded {
                review_id,
                title_id,
            }),
            _ => None,
        }
    }

    /// What this change invalidates.
    pub fn effect(&self) -> Effect {
        if self.op == Op::Truncate {
            return Effect::Everything;
        }
        let tags = match self.table.as_str() {
            "reviews" => self.review_tags(),
            "titles" => self.title_tags(),
            "users" => self.user_tags(),
            "review_likes" => self.like_tags(),
            "comments" => self.comment_tags(),
            "follows" => match (self.follower_id, self.followee_id) {
                (Some(a), Some(b)) => Some(tags::follow_changed(a, b)),
                _ => None,
            },
            _ => None,
        };
        tags.map_or(Effect::Everything, Effect::Tags)
    }

    fn review_tags(&self) -> Option<Vec<String>> {
        let (id, title, author) = (self.id?, self.title_id?, self.author_id?);
        if self.op != Op::Update {
            return Some(tags::review_written(id, title, author));
        }
        let mut out = tags::review_edited(id, title, self.rating_changed);
        if self.likes_changed {
            // MOST_LIKED order of the title's reviews
            out.push(tags::title_reviews(title));
        }
        if self.moved {
            let (old_title, old_author) = (self.old_title_id?, self.old_author_id?);
            out.extend(tags::review_written(id, old_title, old_author));
            out.extend(tags::review_written(id, title, author));
        }
        Some(out)
    }

    fn title_tags(&self) -> Option<Vec<String>> {
        let id = self.id?;
        Some(match self.op {
            Op::Insert => tags::title_created(id),
            Op::Update => {
                let mut out = vec![tags::title(id)];
                if self.listed {
                    out.push(tags::TITLES.into());
                }
                if self.ranked {
                    out.push(tags::TITLES_RANKED.into());
                }
                out
            }
            Op::Delete | Op::Truncate => {
                let mut out = tags::title_created(id);
                out.extend([
                    tags::title_reviews(id),
                    tags::TITLES_RANKED.into(),
                    tags::TRENDING.into(),
                ]);
                out
            }
        })
    }

    fn user_tags(&self) -> Option<Vec<String>> {
        let id = self.id?;
        let name = self.username.as_deref()?;
        match self.op {
            Op::Update => {
                let mut out = vec![tags::user(id)];
                let old = self.old_username.as_deref()?;
                if old != name {
                    out.extend([tags::username(old), tags::username(name)]);
                }
                Some(out)
            }
            // the tags of a sign-up name the user and the username, both of
            // which change again when the row goes away
            _ => Some(tags::user_created(id, name)),
        }
    }

    fn like_tags(&self) -> Option<Vec<String>> {
        let review = self.review_id?;
        Some(match self.title_id {
            Some(title) => tags::review_liked(review, title),
            // the review is being deleted with its likes; its own change
            // covers the title's lists
            None => vec![tags::review(review), tags::TRENDING.into()],
        })
    }

    fn comment_tags(&self) -> Option<Vec<String>> {
        let (id, review) = (self.id?, self.review_id?);
        if self.op != Op::Update {
            return Some(tags::comment_written(id, review));
        }
        match self.old_review_id {
            Some(old) if old != review => {
                let mut out = tags::comment_written(id, old);
                out.extend(tags::comment_written(id, review));
                Some(out)
            }
            _ => Some(vec![tags::comment(id)]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effect(payload: &str) -> Effect {
        Change::parse(payload).map_or(Effect::Everything, |c| c.effect())
    }

    fn tags_of(payload: &str) -> Vec<String> {
        match effect(payload) {
            Effect::Tags(mut t) => {
                t.sort();
                t.dedup();
                t
            }
            Effect::Everything => panic!("{payload} invalidated everything"),
        }
    }

    fn sorted(mut t: Vec<String>) -> Vec<String> {
        t.sort();
        t.dedup();
        t
    }

    #[test]
    fn review_insert_and_delete_match_the_mutations() {
        let insert =
            r#"{"id": 5, "op": "INSERT", "table": "reviews", "title_id": 2, "author_id": 3}"#;
        assert_eq!(tags_of(insert), sorted(tags::review_written(5, 2, 3)));
        let change = Change::parse(insert).expect("parses");
        assert_eq!(
            change.review_added(),
            Some(ReviewAdded {
                review_id: 5,
                title_id: 2
            })
        );
        let delete = insert.replace("INSERT", "DELETE");
        assert_eq!(tags_of(&delete), sorted(tags::review_written(5, 2, 3)));
        assert_eq!(Change::parse(&delete).and_then(|c| c.review_added()), None);
    }

    #[test]
    fn review_updates_invalidate_what_changed() {
        let base = r#""id": 5, "op": "UPDATE", "table": "reviews", "title_id": 2, "author_id": 3, "old_title_id": 2, "old_author_id": 3"#;
        let text_only = format!(
            r#"{{{base}, "rating_changed": false, "likes_changed": false, "moved": false}}"#
        );
        assert_eq!(tags_of(&text_only), vec![tags::review(5)]);
        let rerated = format!(
            r#"{{{base}, "rating_changed": true, "likes_changed": false, "moved": false}}"#
        );
        assert_eq!(tags_of(&rerated), sorted(tags::review_edited(5, 2, true)));
        // a like's counter update adds nothing the like itself does not invalidate
        let liked = format!(
            r#"{{{base}, "rating_changed": false, "likes_changed": true, "moved": false}}"#
        );
        let like_tags = sorted(tags::review_liked(5, 2));
        assert!(tags_of(&liked).iter().all(|t| like_tags.contains(t)));
        let moved = r#"{"id": 5, "op": "UPDATE", "table": "reviews", "title_id": 9, "author_id": 3, "old_title_id": 2, "old_author_id": 3, "rating_changed": false, "likes_changed": false, "moved": true}"#;
        let got = tags_of(moved);
        for t in tags::review_written(5, 2, 3)
            .into_iter()
            .chain(tags::review_written(5, 9, 3))
        {
            assert!(got.contains(&t), "{t} missing from {got:?}");
        }
        // a payload without the flags (an older trigger) assumes the worst
        let bare = format!("{{{base}}}");
        assert!(tags_of(&bare).contains(&tags::title_reviews(2)));
    }

    #[test]
    fn title_counter_updates_do_not_touch_the_title_list() {
        let ranked =
            r#"{"id": 2, "op": "UPDATE", "table": "titles", "listed": false, "ranked": true}"#;
        assert_eq!(
            tags_of(ranked),
            sorted(vec![tags::title(2), tags::TITLES_RANKED.into()])
        );
        let renamed =
            r#"{"id": 2, "op": "UPDATE", "table": "titles", "listed": true, "ranked": false}"#;
        assert_eq!(
            tags_of(renamed),
            sorted(vec![tags::title(2), tags::TITLES.into()])
        );
        let created = r#"{"id": 2, "op": "INSERT", "table": "titles"}"#;
        assert_eq!(tags_of(created), sorted(tags::title_created(2)));
    }

    #[test]
    fn users_likes_comments_follows() {
        let renamed = r#"{"id": 1, "op": "UPDATE", "table": "users", "username": "anne", "old_username": "ann"}"#;
        assert_eq!(
            tags_of(renamed),
            sorted(vec![
                tags::user(1),
                tags::username("ann"),
                tags::username("anne")
            ])
        );
        let signup = r#"{"id": 1, "op": "INSERT", "table": "users", "username": "ann"}"#;
        assert_eq!(tags_of(signup), sorted(tags::user_created(1, "ann")));
        let like = r#"{"op": "INSERT", "table": "review_likes", "user_id": 2, "title_id": 1, "review_id": 7}"#;
        assert_eq!(tags_of(like), sorted(tags::review_liked(7, 1)));
        let cascaded = r#"{"op": "DELETE", "table": "review_likes", "user_id": 2, "title_id": null, "review_id": 7}"#;
        assert!(tags_of(cascaded).contains(&tags::review(7)));
        let comment =
            r#"{"id": 4, "op": "INSERT", "table": "comments", "author_id": 2, "review_id": 7}"#;
        assert_eq!(tags_of(comment), sorted(tags::comment_written(4, 7)));
        let follow = r#"{"op": "DELETE", "table": "follows", "followee_id": 2, "follower_id": 1}"#;
        assert_eq!(tags_of(follow), sorted(tags::follow_changed(1, 2)));
    }

    #[test]
    fn anything_unclear_invalidates_everything() {
        for payload in [
            r#"{"op": "TRUNCATE", "table": "follows"}"#,
            r#"{"id": 1, "op": "INSERT", "table": "platform_secrets"}"#,
            r#"{"id": 1, "op": "INSERT", "table": "users", "username": null}"#,
            r#"{"id": 1, "op": "INSERT", "table": "reviews"}"#,
            r#"{"op": "MERGE", "table": "reviews"}"#,
            "not json",
        ] {
            assert_eq!(effect(payload), Effect::Everything, "{payload}");
        }
    }
}
