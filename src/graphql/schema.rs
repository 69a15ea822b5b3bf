//! The schema: merged roots, limits, and a builder that needs no services
//! (so the SDL can be printed and checked without Postgres or Redis).

use async_graphql::{EmptyMutation, MergedObject, MergedSubscription, Schema, SchemaBuilder};

use super::{
    node::NodeQuery,
    review::{ReviewQuery, ReviewSubscription},
    title::TitleQuery,
    user::UserQuery,
};
use crate::config::Config;

/// Every query field.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(NodeQuery, TitleQuery, ReviewQuery, UserQuery);

/// Live events, over WebSocket at `/graphql` (graphql-transport-ws protocol).
#[derive(MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(ReviewSubscription);

/// The executable schema type.
pub type AppSchema = Schema<QueryRoot, EmptyMutation, SubscriptionRoot>;

/// Registers types and limits; attach services with `.data(..)` before `finish()`.
pub fn schema_builder(
    config: &Config,
) -> SchemaBuilder<QueryRoot, EmptyMutation, SubscriptionRoot> {
    let mut builder = Schema::build(
        QueryRoot::default(),
        EmptyMutation,
        SubscriptionRoot::default(),
    )
    .limit_depth(config.max_depth)
    .limit_complexity(config.max_complexity)
    .limit_recursive_depth(64)
    .limit_directives(50);
    if !config.introspection {
        builder = builder.disable_introspection();
    }
    builder
}

/// The SDL the server serves (what `schema.graphql` must contain).
pub fn sdl() -> String {
    schema_builder(&Config::default()).finish().sdl()
}
