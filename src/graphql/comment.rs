//! Comments: the `Comment` type.

use async_graphql::{Context, ID, Object, Result};

use super::{
    context::{ContextExt, load_review, load_user, must_exist, ttl},
    ids,
    review::Review,
    scalars::DateTime,
    user::User,
};
use crate::{cache::tags, db::comments::CommentRow, error::AppResult};

/// A reply to a review.
pub struct Comment(pub CommentRow);

impl Comment {
    /// Tags every comment of a list as a dependency of the result.
    pub fn tag_all(ctx: &Context<'_>, rows: &[CommentRow]) -> AppResult<()> {
        for r in rows {
            ctx.tag(tags::comment(r.id), ttl::REVIEW)?;
            // a comment exists only as long as its review (deletes cascade)
            ctx.tag(tags::review(r.review_id), ttl::REVIEW)?;
        }
        Ok(())
    }
}

#[Object]
impl Comment {
    /// Global id.
    pub async fn id(&self) -> ID {
        ids::to_global("Comment", self.0.id)
    }

    /// The review this comment replies to.
    async fn review(&self, ctx: &Context<'_>) -> Result<Review> {
        let row = load_review(ctx, self.0.review_id).await?;
        Ok(Review(must_exist(row, "review", self.0.review_id)?))
    }

    /// Who wrote the comment.
    async fn author(&self, ctx: &Context<'_>) -> Result<User> {
        let row = load_user(ctx, self.0.author_id).await?;
        Ok(User(must_exist(row, "user", self.0.author_id)?))
    }

    /// The comment text, as written.
    async fn body(&self) -> &str {
        &self.0.body
    }

    /// When the comment was written.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
}
