//! The schema: merged roots, limits, and a builder that needs no services
//! (so the SDL can be printed and checked without Postgres or Redis).

use std::sync::Arc;

use async_graphql::{
    ErrorExtensionValues, MergedObject, MergedSubscription, Schema, SchemaBuilder, ServerError,
    ServerResult, Variables,
    async_trait::async_trait,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

use super::{
    comment::CommentMutation,
    like::LikeMutation,
    node::NodeQuery,
    review::{ReviewMutation, ReviewQuery, ReviewSubscription},
    title::{TitleMutation, TitleQuery},
    user::{FollowMutation, UserMutation, UserQuery},
};
use crate::config::Config;

/// Every query field.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(NodeQuery, TitleQuery, ReviewQuery, UserQuery);

/// Every mutation field.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    UserMutation,
    TitleMutation,
    ReviewMutation,
    LikeMutation,
    CommentMutation,
    FollowMutation,
);

/// Live events, over WebSocket at `/graphql` (graphql-transport-ws protocol).
#[derive(MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(ReviewSubscription);

/// The executable schema type.
pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Registers types and limits; attach services with `.data(..)` before `finish()`.
/// With introspection off, documents selecting `__schema` or `__type` are
/// refused right after parsing, by an extension.
///
/// A builder without that extension carries [`super::fast::NoExtensions`],
/// which lets page objects skip the extension path: add no `.extension(..)`
/// to one (give `builder` the extension instead, and leave the marker out).
pub fn schema_builder(config: &Config) -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    builder(config, true)
}

/// As [`schema_builder`], but without the extension that refuses
/// introspection: for the HTTP handler, which refuses such documents itself
/// ([`selects_introspection`]) before executing them.
///
/// Any extension at all sends every field of every response through
/// async-graphql's extension path (a registry lookup of the field's type by
/// name, and a boxed future per field per extension), where a schema
/// without extensions resolves fields directly: with introspection off, a
/// W4 page (20 reviews with their titles and authors) cost 2.27M server
/// instructions instead of 1.87M.
pub fn http_schema_builder(
    config: &Config,
) -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    builder(config, false)
}

fn builder(
    config: &Config,
    refuse_introspection: bool,
) -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    // depth and complexity (see `cost`) are checked while validating the
    // document, before any resolver runs
    let mut builder = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .limit_depth(config.max_depth)
    .limit_complexity(config.max_complexity)
    .limit_recursive_depth(64)
    .limit_directives(50);
    if !config.introspection {
        // async-graphql alone answers `__schema` with a silent null; say no
        builder = builder.disable_introspection();
        if refuse_introspection {
            builder = builder.extension(RejectIntrospection);
            return builder;
        }
    }
    builder.data(super::fast::NoExtensions)
}

/// Whether any operation or fragment of `doc` selects `__schema` or `__type`.
pub fn selects_introspection(doc: &ExecutableDocument) -> bool {
    doc.operations
        .iter()
        .map(|(_, op)| &op.node.selection_set.node)
        .chain(doc.fragments.values().map(|f| &f.node.selection_set.node))
        .any(introspects)
}

/// The error a document selecting introspection gets while it is off.
pub fn introspection_refused() -> ServerError {
    let mut err = ServerError::new(INTROSPECTION_OFF, None);
    err.extensions
        .get_or_insert_with(ErrorExtensionValues::default)
        .set("code", "GRAPHQL_VALIDATION_FAILED");
    err
}

/// The message of [`introspection_refused`].
const INTROSPECTION_OFF: &str = "introspection is disabled on this server";

/// Refuses documents that select `__schema` or `__type`, right after
/// parsing (before validation and execution, on every transport).
struct RejectIntrospection;

impl ExtensionFactory for RejectIntrospection {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RejectIntrospection)
    }
}

#[async_trait]
impl Extension for RejectIntrospection {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        if selects_introspection(&doc) {
            return Err(introspection_refused());
        }
        Ok(doc)
    }
}

/// Whether a selection set (or anything nested in it) is an introspection field.
fn introspects(set: &SelectionSet) -> bool {
    set.items.iter().any(|item| match &item.node {
        Selection::Field(f) => {
            matches!(f.node.name.node.as_str(), "__schema" | "__type")
                || introspects(&f.node.selection_set.node)
        }
        Selection::InlineFragment(f) => introspects(&f.node.selection_set.node),
        Selection::FragmentSpread(_) => false,
    })
}

/// The SDL the server serves (what `schema.graphql` must contain).
pub fn sdl() -> String {
    schema_builder(&Config::default()).finish().sdl()
}
