//! Relay object identification: the `Node` interface and `node`/`nodes`.

use async_graphql::{Context, ID, Interface, Object, Result};

use super::{
    comment::Comment,
    context::{load_comment, load_review, load_title, load_user},
    cost, ids,
    review::Review,
    title::Title,
    user::User,
};
use crate::error::{AppError, AppResult};

/// Relay global object identification. IDs are opaque strings.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Global id, usable with `node(id:)`."))]
pub enum Node {
    /// A title.
    Title(Title),
    /// A user.
    User(User),
    /// A review.
    Review(Review),
    /// A comment.
    Comment(Comment),
}

async fn resolve(ctx: &Context<'_>, id: &ID, field: &str) -> AppResult<Option<Node>> {
    let Some((ty, n)) = ids::parse_global(id) else {
        return Err(AppError::bad_input(
            field,
            format!("`{}` is not a valid id", id.as_str()),
        ));
    };
    Ok(match ty {
        "Title" => load_title(ctx, n).await?.map(|r| Node::Title(Title(r))),
        "User" => load_user(ctx, n).await?.map(|r| Node::User(User(r))),
        "Review" => load_review(ctx, n).await?.map(|r| Node::Review(Review(r))),
        "Comment" => load_comment(ctx, n)
            .await?
            .map(|r| Node::Comment(Comment(r))),
        _ => None,
    })
}

/// `node` and `nodes`.
#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Any object by global id; null when there is none.
    #[graphql(complexity = "cost::plus(cost::ROOT, child_complexity)")]
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A global id.")] id: ID,
    ) -> Result<Option<Node>> {
        Ok(resolve(ctx, &id, "id").await?)
    }

    /// Objects by global ids, in the same order; null for each that does not exist. At most 100 ids.
    #[graphql(
        complexity = "cost::plus(cost::ROOT, cost::many(ids.len().min(100), child_complexity))"
    )]
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global ids, at most 100.")] ids: Vec<ID>,
    ) -> Result<Vec<Option<Node>>> {
        if ids.len() > 100 {
            return Err(AppError::bad_input("ids", "at most 100 ids per call").into());
        }
        // resolved concurrently so the loaders batch them
        let found = futures::future::join_all(ids.iter().map(|id| resolve(ctx, id, "ids"))).await;
        Ok(found.into_iter().collect::<AppResult<Vec<_>>>()?)
    }
}
