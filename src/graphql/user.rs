//! Users: the `User` type, `UserQuery` (user, viewer) and `UserMutation`
//! (signUp, logIn) and `FollowMutation` (followUser, unfollowUser).

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use diesel_async::AsyncConnection;

use super::{
    connection::{ReviewConnection, Total, decode_after, page_size},
    context::{ContextExt, load_user, ttl},
    cost, ids,
    loader::{AuthorReviewsKey, ViewerFollowsKey},
    review::Review,
    scalars::DateTime,
    validate, write,
};
use crate::{
    auth,
    cache::tags,
    db::{
        self,
        cursor::SortKind,
        page::PageKey,
        reviews::ReviewSort,
        users::{NewUser, UserRow},
    },
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
///
/// The row is shared, as [`Title`](super::title::Title)'s is.
pub struct User(pub Arc<UserRow>);

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self(Arc::new(row))
    }
}

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
    #[graphql(complexity = "cost::plus(1, cost::list(first, 10, child_complexity))")]
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
/// ASCII-only lower-casing: Unicode rules would fold look-alikes such as
/// the Kelvin sign into ASCII letters and let them pass as a username.
pub fn normalize_username(raw: &str) -> String {
    raw.trim().to_ascii_lowercase()
}

/// User queries.
#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// A user by username (case-insensitive); null when there is none.
    #[graphql(complexity = "cost::plus(cost::ROOT, child_complexity)")]
    async fn user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The username, any case.")] username: String,
    ) -> Result<Option<User>> {
        let username = normalize_username(&username);
        validate::no_nul("username", &username)?;
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
        Ok(row.map(User::from))
    }

    /// The signed-in user; null when anonymous.
    #[graphql(complexity = "cost::plus(cost::ROOT, child_complexity)")]
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let Some(id) = ctx.viewer_id()? else {
            return Ok(None);
        };
        Ok(load_user(ctx, id).await?.map(User))
    }
}

/// A signed-in session.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Bearer token for the Authorization header.
    pub token: String,
    /// The signed-in user.
    pub user: User,
}

/// A new account. (No `Debug`: it holds a password.)
#[derive(InputObject)]
pub struct SignUpInput {
    /// 3-30 characters of a-z, 0-9 and _ (any case; stored lower-case).
    pub username: String,
    /// 8-128 characters.
    pub password: String,
    /// Name shown next to reviews, 1-50 characters; defaults to the username.
    pub display_name: Option<String>,
    /// Free-text profile, at most 500 characters.
    pub bio: Option<String>,
}

/// Credentials. (No `Debug`: it holds a password.)
#[derive(InputObject)]
pub struct LogInInput {
    /// The username, any case.
    pub username: String,
    /// The password.
    pub password: String,
}

/// Account writes.
#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Creates an account and signs it in.
    #[graphql(complexity = "cost::plus(cost::ACCOUNT, child_complexity)")]
    async fn sign_up(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new account.")] input: SignUpInput,
    ) -> Result<AuthPayload> {
        Ok(sign_up(ctx, input).await?)
    }

    /// Signs in. Wrong credentials give UNAUTHENTICATED, with the same message
    /// whether the username exists or not.
    #[graphql(complexity = "cost::plus(cost::ACCOUNT, child_complexity)")]
    async fn log_in(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Username and password.")] input: LogInInput,
    ) -> Result<AuthPayload> {
        Ok(log_in(ctx, input).await?)
    }
}

/// Follow writes (merged after the others, in the contract's order).
#[derive(Default)]
pub struct FollowMutation;

#[Object]
impl FollowMutation {
    /// Follows a user (idempotent). Returns that user.
    #[graphql(complexity = "cost::plus(cost::WRITE, child_complexity)")]
    async fn follow_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the user to follow.")] id: ID,
    ) -> Result<User> {
        Ok(set_following(ctx, &id, true).await?)
    }

    /// Stops following a user (idempotent). Returns that user.
    #[graphql(complexity = "cost::plus(cost::WRITE, child_complexity)")]
    async fn unfollow_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the user to unfollow.")] id: ID,
    ) -> Result<User> {
        Ok(set_following(ctx, &id, false).await?)
    }
}

// Sign-up and sign-in are not rate limited here: the limiter counts per
// user id and there is none yet, while limiting by the username typed would
// let anyone lock a member out of their account by failing on purpose.
// Their cost is bounded per request instead (`cost::ACCOUNT`); limiting per
// client address belongs at the edge, which sees the real address.
async fn sign_up(ctx: &Context<'_>, input: SignUpInput) -> AppResult<AuthPayload> {
    let username = validate::username("input.username", &input.username)?;
    validate::password("input.password", &input.password)?;
    let display_name = input.display_name.unwrap_or_else(|| username.clone());
    validate::text(
        "input.displayName",
        &display_name,
        1,
        validate::DISPLAY_NAME_MAX,
    )?;
    if let Some(bio) = &input.bio {
        validate::text("input.bio", bio, 0, validate::BIO_MAX)?;
    }
    let services = ctx.services()?;
    let password_hash = auth::hash_password(input.password).await?;
    let new = NewUser {
        username: &username,
        display_name: &display_name,
        bio: input.bio.as_deref(),
        password_hash: &password_hash,
        role: "MEMBER",
    };
    let mut conn = services.db.conn().await?;
    let row = conn
        .transaction::<_, AppError, _>(async |c| {
            db::users::insert(c, &new)
                .await
                .map_err(|e| AppError::from_db(e, &[("users_username_key", "username taken")]))
        })
        .await?;
    drop(conn);
    let token = services.auth.issue(row.id)?;
    services
        .cache
        .invalidate(&tags::user_created(row.id, &row.username))
        .await;
    Ok(AuthPayload {
        token,
        user: User::from(row),
    })
}

async fn log_in(ctx: &Context<'_>, input: LogInInput) -> AppResult<AuthPayload> {
    let wrong = || AppError::Unauthenticated("wrong username or password".into());
    let username = normalize_username(&input.username);
    // no account can match these; refusing them early says nothing about
    // which accounts exist and keeps huge passwords away from argon2
    if username.len() > 30
        || username.contains('\0')
        || input.password.chars().count() > validate::PASSWORD_MAX
    {
        return Err(wrong());
    }
    let services = ctx.services()?;
    let found = {
        let mut conn = services.db.conn().await?;
        db::users::credentials(&mut conn, &username).await?
    };
    let (id, hash) = found.unzip();
    // an unknown username is verified against a dummy hash: same time, same answer
    if !auth::verify_password(hash, input.password).await? {
        return Err(wrong());
    }
    let id = id.ok_or_else(wrong)?;
    let row = {
        let mut conn = services.db.conn().await?;
        db::users::find(&mut conn, id).await?.ok_or_else(wrong)?
    };
    let token = services.auth.issue(row.id)?;
    Ok(AuthPayload {
        token,
        user: User::from(row),
    })
}

async fn set_following(ctx: &Context<'_>, id: &ID, follow: bool) -> AppResult<User> {
    let viewer = ctx.require_user()?;
    let target = ids::require(id, "User", "id")?;
    if target == viewer {
        return Err(AppError::bad_input("id", "you cannot follow yourself"));
    }
    let services = write::admit(ctx, viewer).await?;
    let mut conn = services.db.conn().await?;
    let row = conn
        .transaction::<_, AppError, _>(async |c| {
            let present = db::users::lock_in_order(c, &[viewer, target]).await?;
            if !present.contains(&viewer) {
                return Err(AppError::Unauthenticated(
                    "your account no longer exists".into(),
                ));
            }
            if !present.contains(&target) {
                return Err(AppError::NotFound("no user with this id".into()));
            }
            // follower counts move by trigger on the rows locked above
            if follow {
                db::follows::follow(c, viewer, target).await?;
            } else {
                db::follows::unfollow(c, viewer, target).await?;
            }
            db::users::find(c, target)
                .await?
                .ok_or_else(|| AppError::NotFound("no user with this id".into()))
        })
        .await?;
    drop(conn);
    services
        .cache
        .invalidate(&tags::follow_changed(viewer, target))
        .await;
    Ok(User::from(row))
}
