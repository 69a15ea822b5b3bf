//! The steps every mutation shares. A write goes: sign-in check →
//! validation → per-user rate limit → one transaction (authorization reads
//! inside it) → invalidation of the cache tags it changed → response.
//! Mutation resolvers are thin wrappers around functions returning
//! [`AppResult`], so every error goes through `AppError`'s code mapping.

use std::sync::Arc;

use async_graphql::Context;
use diesel_async::AsyncPgConnection;

use super::context::ContextExt;
use crate::{
    app::Services,
    db,
    error::{AppError, AppResult},
};

/// Counts a write by `viewer` against the rate limit; returns the services
/// to run it with. Call after validation, so a rejected form costs nothing.
pub async fn admit<'c>(ctx: &'c Context<'_>, viewer: i64) -> AppResult<&'c Arc<Services>> {
    let services = ctx.services()?;
    services.cache.allow_write(viewer).await?;
    Ok(services)
}

/// Whether the acting user is an ADMIN, read from the database (not from
/// the token, so a promotion or demotion takes effect at once).
pub async fn is_admin(conn: &mut AsyncPgConnection, viewer: i64) -> AppResult<bool> {
    match db::users::role_of(conn, viewer).await?.as_deref() {
        Some("ADMIN") => Ok(true),
        Some(_) => Ok(false),
        None => Err(AppError::Unauthenticated(
            "your account no longer exists".into(),
        )),
    }
}

/// `FORBIDDEN` unless the acting user is an ADMIN.
pub async fn require_admin(
    conn: &mut AsyncPgConnection,
    viewer: i64,
    action: &str,
) -> AppResult<()> {
    if is_admin(conn, viewer).await? {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!("only admins may {action}")))
    }
}

/// `FORBIDDEN` unless the acting user wrote the thing (`author`) or is an ADMIN.
pub async fn require_author_or_admin(
    conn: &mut AsyncPgConnection,
    viewer: i64,
    author: i64,
    what: &str,
) -> AppResult<()> {
    if viewer == author || is_admin(conn, viewer).await? {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "only its author or an admin may delete this {what}"
        )))
    }
}
