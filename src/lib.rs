//! nexora: a GraphQL API for a review platform (movies, series, miniseries,
//! anime) over Postgres, with a Redis query-result cache.
//!
//! `main.rs` only calls [`cli::run`]; tests build the real router with
//! [`app::App::build`] and [`http::router`].

pub mod app;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod feed;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod sched;
pub mod seed;
pub mod server;
pub mod telemetry;
