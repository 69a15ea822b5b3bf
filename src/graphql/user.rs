//! Users: the `User` type and `UserQuery` (user, viewer).

use async_graphql::{Context, Enum, ID, Object, Result};

use super::{
    connection::{ReviewConnection, Total, decode_after, page_size},
    context::{ContextExt, load_user, ttl},
    ids,
    loader::{AuthorReviewsKey, ViewerFollowsKey},
    review::Review,
    scalars::DateTime,
};
use crate::{
    cache::tags,
    db::{self, cursor::SortKind, page::PageKey, reviews::ReviewSort, users::UserRow},
    error::{AppError, AppResult},
};

/// What a user may do.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum Role {
    /// Writes reviews, likes, comments and follows.
    Member,
    /// Also adds titles and removes anyone's reviews and comments.
    Admin,
}

impl Role {
    /// Parses the stored form.
    pub fn from_db(s: &str) -> AppResult<Self> {
        match s {
            "MEMBER" => Ok(Self::Member),
            "ADMIN" => Ok(Self::Admin),
            other => Err(AppError::Internal(format!(
                "unknown role {other:?} in database"
            ))),
        }
    }
}

/// A member of the platform.
pub struct User(pub UserRow);

#[Object]
impl User {
    /// Global id.
    pub async fn id(&self) -> ID {
        ids::to_global("User", self.0.id)
    }

    /// Unique handle: 3-30 characters of a-z, 0-9 and _.
    async fn username(&self) -> &str {
        &self.0.username
    }

    /// Name shown next to reviews.
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }

    /// Free-text profile.
    async fn bio(&self) -> Option<&str> {
        self.0.bio.as_deref()
    }

    /// MEMBER or ADMIN.
    async fn role(&self) -> Result<Role> {
        Ok(Role::from_db(&self.0.role)?)
    }

    /// Number of reviews written.
    async fn review_count(&self) -> i32 {
        self.0.review_count
    }

    /// Number of users following this user.
    async fn follower_count(&self) -> i32 {
        self.0.follower_count
    }

    /// Number of users this user follows.
    async fn following_count(&self) -> i32 {
        self.0.following_count
    }

    /// Whether the signed-in viewer follows this user; false when anonymous. Viewer-specific.
    async fn viewer_is_following(&self, ctx: &Context<'_>) -> Result<bool> {
        let Some(viewer) = ctx.viewer_id()? else {
            return Ok(false);
        };
        if viewer == self.0.id {
            return Ok(false);
        }
        ctx.tag(tags::follows(viewer), ttl::USER)?;
        let key = ViewerFollowsKey {
            viewer,
            user: self.0.id,
        };
        Ok(ctx.loader()?.load_one(key).await?.unwrap_or(false))
    }

    /// This user's reviews, newest first.
    async fn reviews(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100.", default = 10)] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after (`pageInfo.endCursor`).")] after: Option<String>,
    ) -> Result<ReviewConnection> {
        let first = page_size(first, 10)?;
        let after = decode_after(after.as_deref(), "UR", SortKind::Time)?;
        let had_after = after.is_some();
        ctx.tag(tags::user_reviews(self.0.id), ttl::LIST)?;
        let key = AuthorReviewsKey(PageKey {
            parent: self.0.id,
            after,
            limit: first + 1,
        });
        let rows = ctx.loader()?.load_one(key).await?.unwrap_or_default();
        Review::tag_all(ctx, &rows)?;
        Ok(ReviewConnection::new(
            rows,
            first,
            had_after,
            |r| r.keyset(ReviewSort::Newest).encode("UR"),
            Review,
            Total::Known(i64::from(self.0.review_count)),
        ))
    }

    /// When the account was created.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
}

/// Normalizes a username for lookup (usernames compare case-insensitively).
pub fn normalize_username(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// User queries.
#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// A user by username (case-insensitive); null when there is none.
    async fn user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The username, any case.")] username: String,
    ) -> Result<Option<User>> {
        let username = normalize_username(&username);
        if username.len() > 64 {
            return Err(
                AppError::bad_input("username", "usernames are at most 30 characters").into(),
            );
        }
        ctx.tag(tags::username(&username), ttl::USER)?;
        let row = {
            let mut conn = ctx.services()?.db.conn().await.map_err(AppError::from)?;
            db::users::by_username(&mut conn, &username)
                .await
                .map_err(AppError::from)?
        };
        if let Some(r) = &row {
            ctx.tag(tags::user(r.id), ttl::USER)?;
        }
        Ok(row.map(User))
    }

    /// The signed-in user; null when anonymous.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let Some(id) = ctx.viewer_id()? else {
            return Ok(None);
        };
        Ok(load_user(ctx, id).await?.map(User))
    }
}
