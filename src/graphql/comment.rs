//! Comments: the `Comment` type and `CommentMutation` (addComment,
//! deleteComment).

use async_graphql::{Context, ID, Object, Result};
use diesel_async::AsyncConnection;

use super::{
    context::{ContextExt, load_review, load_user, must_exist, ttl},
    cost,
    fast::Lean,
    ids,
    review::Review,
    scalars::DateTime,
    user::User,
    validate, write,
};
use crate::{
    cache::tags,
    db::{self, comments::CommentRow},
    error::{AppError, AppResult},
};

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
    async fn review(&self, ctx: &Context<'_>) -> Result<Lean<Review>> {
        let row = load_review(ctx, self.0.review_id).await?;
        Ok(Lean(Review(must_exist(row, "review", self.0.review_id)?)))
    }

    /// Who wrote the comment.
    async fn author(&self, ctx: &Context<'_>) -> Result<Lean<User>> {
        let row = load_user(ctx, self.0.author_id).await?;
        Ok(Lean(User(must_exist(row, "user", self.0.author_id)?)))
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

/// Comment writes.
#[derive(Default)]
pub struct CommentMutation;

#[Object]
impl CommentMutation {
    /// Replies to a review.
    #[graphql(complexity = "cost::plus(cost::WRITE, child_complexity)")]
    async fn add_comment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the review to reply to.")] review_id: ID,
        #[graphql(desc = "The comment, 1 to 2,000 characters, stored as written.")] body: String,
    ) -> Result<Comment> {
        Ok(add(ctx, &review_id, &body).await?)
    }

    /// Author or ADMIN. Returns the deleted comment's id.
    #[graphql(complexity = "cost::plus(cost::WRITE, child_complexity)")]
    async fn delete_comment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the comment.")] id: ID,
    ) -> Result<ID> {
        Ok(delete(ctx, &id).await?)
    }
}

async fn add(ctx: &Context<'_>, review_id: &ID, body: &str) -> AppResult<Comment> {
    let viewer = ctx.require_user()?;
    let review_id = ids::require(review_id, "Review", "reviewId")?;
    validate::text("body", body, 1, validate::COMMENT_MAX)?;
    let services = write::admit(ctx, viewer).await?;
    let mut conn = services.db.conn().await?;
    // an unknown review fails the foreign key (NOT_FOUND); commentCount
    // moves by trigger in this transaction
    let row = conn
        .transaction::<_, AppError, _>(async |c| {
            Ok(db::comments::insert(c, review_id, viewer, body).await?)
        })
        .await?;
    drop(conn);
    services
        .cache
        .invalidate(&tags::comment_written(row.id, row.review_id))
        .await;
    Ok(Comment(row))
}

async fn delete(ctx: &Context<'_>, id: &ID) -> AppResult<ID> {
    let viewer = ctx.require_user()?;
    let id = ids::require(id, "Comment", "id")?;
    let services = write::admit(ctx, viewer).await?;
    let mut conn = services.db.conn().await?;
    let row = conn
        .transaction::<_, AppError, _>(async |c| {
            let row = db::comments::lock(c, id)
                .await?
                .ok_or_else(|| AppError::NotFound("no comment with this id".into()))?;
            write::require_author_or_admin(c, viewer, row.author_id, "comment").await?;
            db::comments::delete(c, id).await?;
            Ok(row)
        })
        .await?;
    drop(conn);
    services
        .cache
        .invalidate(&tags::comment_written(row.id, row.review_id))
        .await;
    Ok(ids::to_global("Comment", row.id))
}
