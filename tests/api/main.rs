//! Integration tests: one binary, modules per area. Every test talks to the
//! real Postgres (its own database) and Redis (its own key prefix).

mod cache;
mod feed;
mod guardrails;
mod http;
mod read_api;
mod schema_file;
mod support;
mod writes;
