//! The GraphQL API: one file per entity with its type and its
//! `<Entity>Query` / `<Entity>Mutation`, merged in [`schema`].

pub mod batch;
pub mod comment;
pub mod connection;
pub mod context;
pub mod cost;
pub mod fast;
pub mod ids;
pub mod like;
pub mod loader;
pub mod node;
pub mod review;
pub mod scalars;
pub mod schema;
pub mod title;
pub mod user;
pub mod validate;
pub mod write;
