//! Every mutation against real Postgres and Redis: accounts, authorization,
//! validation, idempotence, counters under concurrency, and read-your-writes.

mod accounts;
mod freshness;
mod reviews;
mod social;

use std::time::Duration;

use futures::future::join_all;
use nexora::config::Config;
use serde_json::{Value, json};

use crate::support::{Res, TestApp, fx, gid, test_config};

const SIGN_UP: &str = "mutation($input: SignUpInput!) {
  signUp(input: $input) { token user { id username displayName bio role reviewCount } }
}";
const LOG_IN: &str = "mutation($input: LogInInput!) {
  logIn(input: $input) { token user { id username } }
}";
const CREATE_TITLE: &str = "mutation($input: CreateTitleInput!) {
  createTitle(input: $input) { id kind name releaseYear synopsis genres reviewCount averageRating }
}";
const CREATE_REVIEW: &str = "mutation($input: CreateReviewInput!) {
  createReview(input: $input) {
    id rating body containsSpoilers likeCount
    title { id reviewCount averageRating }
    author { id reviewCount }
  }
}";
const UPDATE_REVIEW: &str = "mutation($id: ID!, $input: UpdateReviewInput!) {
  updateReview(id: $id, input: $input) {
    id rating body containsSpoilers createdAt updatedAt title { averageRating }
  }
}";
const DELETE_REVIEW: &str = "mutation($id: ID!) { deleteReview(id: $id) }";
const LIKE: &str = "mutation($id: ID!) { likeReview(id: $id) { id likeCount viewerHasLiked } }";
const UNLIKE: &str = "mutation($id: ID!) { unlikeReview(id: $id) { id likeCount viewerHasLiked } }";
const ADD_COMMENT: &str = "mutation($reviewId: ID!, $body: String!) {
  addComment(reviewId: $reviewId, body: $body) {
    id body author { id } review { id commentCount }
  }
}";
const DELETE_COMMENT: &str = "mutation($id: ID!) { deleteComment(id: $id) }";
const FOLLOW: &str = "mutation($id: ID!) {
  followUser(id: $id) { id followerCount viewerIsFollowing }
}";
const UNFOLLOW: &str = "mutation($id: ID!) {
  unfollowUser(id: $id) { id followerCount viewerIsFollowing }
}";
const TITLE: &str = "query($id: ID!) {
  title(id: $id) {
    reviewCount averageRating
    reviews(first: 10) { totalCount edges { node { id rating } } }
  }
}";

/// A config whose pool waits long enough for a burst of concurrent writes
/// on a busy 2-core machine (the default 1.5 s is tuned for production).
fn patient_config() -> Config {
    Config {
        db_timeout: Duration::from_secs(20),
        ..test_config()
    }
}

fn assert_code(res: &Res, code: &str) {
    assert_eq!(res.code(), Some(code), "{}", res.body);
}

fn assert_bad_input(res: &Res, field: &str) {
    assert_eq!(
        (res.code(), res.field()),
        (Some("BAD_USER_INPUT"), Some(field)),
        "{}",
        res.body
    );
}

async fn sign_up(t: &TestApp, username: &str, password: &str) -> Res {
    t.gql(
        SIGN_UP,
        json!({ "input": { "username": username, "password": password } }),
    )
    .await
}

async fn review(t: &TestApp, token: &str, title: i64, rating: i32, body: &str) -> Res {
    t.gql_as(
        Some(token),
        CREATE_REVIEW,
        json!({ "input": { "titleId": gid("Title", title), "rating": rating, "body": body } }),
    )
    .await
}
