//! Review likes: `LikeMutation` (likeReview, unlikeReview), next to `db::likes`.

use async_graphql::{Context, ID, Object, Result};
use diesel_async::AsyncConnection;

use super::{context::ContextExt, cost, ids, review::Review, write};
use crate::{
    cache::tags,
    db,
    error::{AppError, AppResult},
};

/// Like writes.
#[derive(Default)]
pub struct LikeMutation;

#[Object]
impl LikeMutation {
    /// Idempotent.
    #[graphql(complexity = "cost::plus(cost::WRITE, child_complexity)")]
    async fn like_review(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the review.")] id: ID,
    ) -> Result<Review> {
        Ok(set_liked(ctx, &id, true).await?)
    }

    /// Idempotent.
    #[graphql(complexity = "cost::plus(cost::WRITE, child_complexity)")]
    async fn unlike_review(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the review.")] id: ID,
    ) -> Result<Review> {
        Ok(set_liked(ctx, &id, false).await?)
    }
}

async fn set_liked(ctx: &Context<'_>, id: &ID, liked: bool) -> AppResult<Review> {
    let viewer = ctx.require_user()?;
    let id = ids::require(id, "Review", "id")?;
    let services = write::admit(ctx, viewer).await?;
    let mut conn = services.db.conn().await?;
    let row = conn
        .transaction::<_, AppError, _>(async |c| {
            // an unknown review fails the like's foreign key (NOT_FOUND);
            // likeCount moves by trigger under the review's row lock, so
            // concurrent likes serialize and the count stays exact
            if liked {
                db::likes::like(c, viewer, id).await?;
            } else {
                db::likes::unlike(c, viewer, id).await?;
            }
            // read back in the transaction: the count including this write
            db::reviews::find(c, id)
                .await?
                .ok_or_else(|| AppError::NotFound("no review with this id".into()))
        })
        .await?;
    drop(conn);
    services
        .cache
        .invalidate(&tags::review_liked(row.id, row.title_id))
        .await;
    Ok(Review(row))
}
