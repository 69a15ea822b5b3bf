//! Accounts: argon2id password hashing and HS256 tokens.
//!
//! Passwords are never logged, returned or stored in plain text. Sign-in with
//! an unknown username still runs one hash verification, so the answer takes
//! as long (and says the same) as for a wrong password.

use std::time::Duration;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{AppError, AppResult};

/// Issues and checks bearer tokens.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The user id, as a string (JWT convention).
    sub: String,
    iat: u64,
    exp: u64,
}

impl Auth {
    /// Tokens signed with `secret`, valid for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// A random 32-byte secret, for demo mode only (tokens die with the process).
    pub fn random_secret() -> AppResult<Vec<u8>> {
        let mut secret = vec![0u8; 32];
        getrandom::fill(&mut secret)
            .map_err(|e| AppError::Internal(format!("no randomness: {e}")))?;
        Ok(secret)
    }

    /// A signed token for `user_id`.
    pub fn issue(&self, user_id: i64) -> AppResult<String> {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        self.issue_expiring(user_id, now, now + self.ttl.as_secs())
    }

    /// A signed token with explicit times (unix seconds); tests use it to
    /// make expired tokens without waiting.
    pub fn issue_expiring(
        &self,
        user_id: i64,
        issued_at: u64,
        expires_at: u64,
    ) -> AppResult<String> {
        let claims = Claims {
            sub: user_id.to_string(),
            iat: issued_at,
            exp: expires_at,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AppError::Internal(format!("signing token: {e}")))
    }

    /// The user id in a valid token; malformed, forged or expired → `UNAUTHENTICATED`.
    pub fn verify(&self, token: &str) -> AppResult<i64> {
        self.verify_until(token).map(|(user_id, _)| user_id)
    }

    /// [`Auth::verify`], plus the unix second after which the token is no
    /// longer accepted (its `exp` plus the clock-skew leeway).
    pub fn verify_until(&self, token: &str) -> AppResult<(i64, u64)> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                let why = match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                        "the token has expired; sign in again"
                    }
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        "the token's signature is not valid"
                    }
                    _ => "the token is malformed",
                };
                AppError::Unauthenticated(why.into())
            })?;
        let user_id = data
            .claims
            .sub
            .parse()
            .map_err(|_| AppError::Unauthenticated("the token is malformed".into()))?;
        Ok((
            user_id,
            data.claims.exp.saturating_add(self.validation.leeway),
        ))
    }

    /// Parses an `Authorization` header value into a user id.
    pub fn from_header(&self, value: &str) -> AppResult<i64> {
        self.from_header_until(value).map(|(user_id, _)| user_id)
    }

    /// [`Auth::from_header`], plus when the token stops being accepted (see
    /// [`Auth::verify_until`]).
    pub fn from_header_until(&self, value: &str) -> AppResult<(i64, u64)> {
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| {
                AppError::Unauthenticated("Authorization must be `Bearer <token>`".into())
            })?;
        self.verify_until(token.trim())
    }
}

/// Hashes a password with argon2id (on a blocking thread: it is slow on purpose).
pub async fn hash_password(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AppError::Internal(format!("hashing password: {e}")))
    })
    .await
    .map_err(|e| AppError::Internal(format!("hashing task: {e}")))?
}

/// A real argon2id hash of a password nobody has, verified against when the
/// username is unknown so both failures cost the same time.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$VYUQ8vdfaX6NB3PbLZ8Tn3iVsNbjnGzBH6AKX4LTmas";

/// Checks `password` against `hash` (or the dummy hash when `hash` is `None`).
pub async fn verify_password(hash: Option<String>, password: String) -> AppResult<bool> {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let ok = PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        known && ok
    })
    .await
    .map_err(|e| AppError::Internal(format!("verifying task: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_forgeries() {
        let auth = Auth::new(&[7u8; 32], Duration::from_secs(60));
        let token = auth.issue(42).expect("issue");
        assert_eq!(auth.verify(&token), Ok(42));
        let other = Auth::new(&[8u8; 32], Duration::from_secs(60));
        assert_eq!(
            other.verify(&token).map_err(|e| e.code()),
            Err("UNAUTHENTICATED")
        );
        assert!(auth.verify("abc.def.ghi").is_err());
        let now = chrono::Utc::now().timestamp() as u64;
        let expired = auth.issue_expiring(42, now - 120, now - 60).expect("issue");
        assert_eq!(
            auth.verify(&expired).map_err(|e| e.code()),
            Err("UNAUTHENTICATED")
        );
        assert!(auth.from_header("Basic xyz").is_err());
        // accepted until exp plus the 5 s leeway: a WebSocket closes then
        let lasting = auth.issue_expiring(42, now, now + 30).expect("issue");
        assert_eq!(
            auth.from_header_until(&format!("Bearer {lasting}")),
            Ok((42, now + 35))
        );
    }

    #[tokio::test]
    async fn password_hash_round_trip() {
        let hash = hash_password("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password(Some(hash.clone()), "correct horse".into())
                .await
                .expect("v")
        );
        assert!(
            !verify_password(Some(hash), "wrong".into())
                .await
                .expect("v")
        );
        assert!(!verify_password(None, "anything".into()).await.expect("v"));
    }
}
