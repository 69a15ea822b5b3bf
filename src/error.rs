//! The one error type of the request path.
//!
//! Policy: `db/` returns `diesel::QueryResult`; resolvers and handlers return
//! [`AppResult`]; `anyhow` is only for start-up, the CLI and tests. Every
//! [`AppError`] variant maps to exactly one `extensions.code` in
//! `From<AppError> for async_graphql::Error`. Internal errors are logged once,
//! here, inside the request span (which carries the request id); the client
//! sees a generic message and the request id, never SQL or stack text.
//!
//! `AppError` deliberately does not implement `Display`/`std::error::Error`:
//! async-graphql has a blanket `From<T: Display>` for its error type, which
//! would bypass the code mapping below. [`AppError::message`] gives the text.

use async_graphql::ErrorExtensions;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Result of anything on the request path.
pub type AppResult<T> = Result<T, AppError>;

/// Everything a request can fail with, one variant per client-visible code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppError {
    /// No or invalid credentials (`UNAUTHENTICATED`).
    Unauthenticated(String),
    /// Signed in, but not allowed (`FORBIDDEN`).
    Forbidden(String),
    /// A client value is wrong; `field` names it (`BAD_USER_INPUT`).
    BadInput {
        /// The argument or input field at fault, e.g. `input.rating`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The thing asked for does not exist (`NOT_FOUND`).
    NotFound(String),
    /// The write collides with existing data (`CONFLICT`).
    Conflict(String),
    /// Too many writes (`RATE_LIMITED`).
    RateLimited {
        /// Seconds until a write will be accepted again.
        retry_after_secs: u64,
    },
    /// A subscriber fell too far behind the live feed and its subscription
    /// was ended (`SUBSCRIPTION_LAGGED`); subscribe again and refetch.
    Lagged {
        /// Events it missed.
        missed: u64,
    },
    /// Postgres is unreachable or the pool is exhausted (`SERVICE_UNAVAILABLE`).
    Unavailable(String),
    /// A bug or an unexpected failure (`INTERNAL_SERVER_ERROR`); the text is logged, not shown.
    Internal(String),
}

impl AppError {
    /// A `BAD_USER_INPUT` error naming the field at fault.
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The client-facing message (internal details are not included).
    pub fn message(&self) -> String {
        match self {
            Self::Unauthenticated(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::Conflict(m)
            | Self::Unavailable(m) => m.clone(),
            Self::BadInput { message, .. } => message.clone(),
            Self::RateLimited { retry_after_secs } => {
                format!("rate limit exceeded; retry in {retry_after_secs} s")
            }
            Self::Lagged { missed } => format!(
                "this subscription fell behind by {missed} events and was ended; subscribe again and refetch"
            ),
            Self::Internal(_) => "internal error".into(),
        }
    }

    /// The `extensions.code` this error is reported with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::BadInput { .. } => "BAD_USER_INPUT",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Conflict(_) => "CONFLICT",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Lagged { .. } => "SUBSCRIPTION_LAGGED",
            Self::Unavailable(_) => "SERVICE_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// Maps a database error, turning unique violations into `CONFLICT` by
    /// constraint name (unknown constraints still give `CONFLICT`, with a
    /// generic message).
    pub fn from_db(err: DieselError, conflicts: &[(&str, &str)]) -> Self {
        if let DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) = &err {
            let constraint = info.constraint_name().unwrap_or_default();
            let message = conflicts
                .iter()
                .find(|(name, _)| *name == constraint)
                .map_or("this already exists", |(_, msg)| msg);
            return Self::Conflict(message.to_owned());
        }
        err.into()
    }
}

impl From<DieselError> for AppError {
    fn from(err: DieselError) -> Self {
        match &err {
            DieselError::NotFound => Self::NotFound("not found".into()),
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                Self::Conflict("this already exists".into())
            }
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info) => {
                missing_reference(info.constraint_name().unwrap_or_default())
            }
            // validation runs first, so only a gap in it gets here; still the
            // client's value, not a server fault
            DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, info) => Self::bad_input(
                "input",
                format!(
                    "a value breaks the rule {}",
                    info.constraint_name().unwrap_or("of the data model")
                ),
            ),
            // no SQLSTATE: the connection is gone (diesel-async reports it this way)
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            )
            | DieselError::BrokenTransactionManager => {
                Self::Unavailable("the database is unavailable; retry shortly".into())
            }
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
                if [
                    "statement timeout",
                    "canceling statement",
                    "terminating connection",
                    "the database system is",
                    "too many connections",
                ]
                .iter()
                .any(|m| info.message().contains(m)) =>
            {
                Self::Unavailable("the database is overloaded or restarting; retry shortly".into())
            }
            _ => Self::Internal(format!("{err}")),
        }
    }
}

/// Foreign keys whose referencing column is the acting user: a valid token
/// for an account that no longer exists.
const ACTOR_REFERENCES: [&str; 4] = [
    "reviews_author_id_fkey",
    "comments_author_id_fkey",
    "review_likes_user_id_fkey",
    "follows_follower_id_fkey",
];

/// A write referenced a row that does not exist (or was deleted by a
/// concurrent transaction after the caller looked): `NOT_FOUND`, or
/// `UNAUTHENTICATED` when the missing row is the acting user.
fn missing_reference(constraint: &str) -> AppError {
    if ACTOR_REFERENCES.contains(&constraint) {
        return AppError::Unauthenticated("your account no longer exists".into());
    }
    let what = match constraint {
        "reviews_title_id_fkey" => "title",
        "comments_review_id_fkey" | "review_likes_review_id_fkey" => "review",
        "follows_followee_id_fkey" => "user",
        _ => "referenced item",
    };
    AppError::NotFound(format!("the {what} does not exist"))
}

impl From<crate::db::PoolError> for AppError {
    fn from(err: crate::db::PoolError) -> Self {
        tracing::warn!(error = %err, "database pool unavailable");
        Self::Unavailable("the database is unavailable; retry shortly".into())
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        let code = err.code();
        match err {
            AppError::Internal(detail) => {
                let request_id = crate::http::current_request_id();
                tracing::error!(error = %detail, "internal error");
                async_graphql::Error::new(format!(
                    "internal error; quote request id {request_id} when reporting it"
                ))
                .extend_with(|_, e| {
                    e.set("code", code);
                    e.set("requestId", request_id.as_str());
                })
            }
            AppError::BadInput { field, message } => async_graphql::Error::new(message)
                .extend_with(|_, e| {
                    e.set("code", code);
                    e.set("field", field.as_str());
                }),
            AppError::RateLimited { retry_after_secs } => async_graphql::Error::new(err.message())
                .extend_with(|_, e| {
                    e.set("code", code);
                    e.set("retryAfter", retry_after_secs);
                }),
            AppError::Lagged { missed } => {
                async_graphql::Error::new(err.message()).extend_with(|_, e| {
                    e.set("code", code);
                    e.set("missed", missed);
                })
            }
            other => {
                async_graphql::Error::new(other.message()).extend_with(|_, e| e.set("code", code))
            }
        }
    }
}
