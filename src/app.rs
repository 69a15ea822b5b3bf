//! Wiring: the shared services every request uses.

use std::sync::Arc;

use crate::{
    auth::Auth,
    cache::{Cache, flight::Flights, key::KeyMemo},
    config::Config,
    db::Db,
    feed::{Feed, FeedTask},
    graphql::{
        batch::Batcher,
        loader::DbLoader,
        schema::{AppSchema, http_schema_builder, schema_builder},
    },
    http::{docs::DocCache, graphql::Executed, ws::Sockets},
};

/// Services shared by all requests of one instance (schema data).
pub struct Services {
    /// Runtime configuration.
    pub config: Arc<Config>,
    /// Postgres pool.
    pub db: Db,
    /// Batching loader.
    pub loader: Batcher,
    /// Token issuing and checking.
    pub auth: Auth,
    /// Query cache, rate limits, persisted queries.
    pub cache: Cache,
    /// The change feed's hub: new reviews for subscribers, listener status.
    pub feed: Feed,
    /// Open WebSocket connections: their cap and their shutdown.
    pub sockets: Sockets,
}

/// One server instance: its services and its schema. Cloned per request
/// (axum state), so it is one `Arc`: one reference count to touch.
#[derive(Clone)]
pub struct App(Arc<AppParts>);

/// What an [`App`] holds.
pub struct AppParts {
    /// Shared services.
    pub services: Arc<Services>,
    /// The executable schema (WebSocket subscriptions).
    pub schema: AppSchema,
    /// The same schema without extensions, for HTTP requests, whose handler
    /// refuses introspection itself (see `http_schema_builder`).
    pub http_schema: AppSchema,
    /// Concurrent identical cacheable requests share one execution.
    pub flights: Flights<Executed>,
    /// Cache keys of request bodies seen recently.
    pub keys: KeyMemo,
    /// Parsed documents of query texts executed recently.
    pub docs: DocCache,
}

impl std::ops::Deref for App {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

impl App {
    /// Builds an instance over an existing pool.
    pub fn build(config: Config, db: Db, cache: Cache, jwt_secret: &[u8]) -> Self {
        let loader = Batcher::new(DbLoader::new(db.clone()));
        let auth = Auth::new(jwt_secret, config.jwt_ttl);
        let config = Arc::new(config);
        let services = Arc::new(Services {
            config: config.clone(),
            db,
            loader,
            auth,
            cache,
            feed: Feed::default(),
            sockets: Sockets::new(config.ws_max_connections),
        });
        let schema = schema_builder(&config).data(services.clone()).finish();
        // the two differ only while introspection is off
        let http_schema = if config.introspection {
            schema.clone()
        } else {
            http_schema_builder(&config).data(services.clone()).finish()
        };
        Self(Arc::new(AppParts {
            services,
            schema,
            http_schema,
            flights: Flights::default(),
            keys: KeyMemo::default(),
            docs: DocCache::default(),
        }))
    }

    /// Starts this instance's change-feed listener (cache invalidation for
    /// writes made anywhere, and `reviewAdded`). `serve` starts it; tests
    /// that need it call this.
    pub fn start_feed(&self) -> FeedTask {
        crate::feed::spawn(self.services.clone())
    }
}
