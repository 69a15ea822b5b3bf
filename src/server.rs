//! Start-up: database, migrations, services, HTTP server, shutdown.

use axum::serve::ListenerExt;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::{
    app::App,
    auth::Auth,
    cli::{AdminTask, Cli, Command, SeedArgs},
    config::Config,
    db::{self, Db},
};

/// Runs the command line.
pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve { demo: false }) {
        Command::Serve { demo } => serve(config, demo).await,
        Command::Schema => {
            print!("{}", crate::graphql::schema::sdl());
            Ok(())
        }
        Command::Migrate => {
            prepare_database(&config).await?;
            Ok(())
        }
        Command::Seed(args) => {
            prepare_database(&config).await?;
            let report = crate::seed::run(&config.database_url, &args, config.db_timeout).await?;
            println!(
                "seeded {} titles, {} users, {} reviews, {} likes, {} comments in {:.1} s",
                report.titles,
                report.users,
                report.reviews,
                report.likes,
                report.comments,
                report.seconds
            );
            Ok(())
        }
        Command::Admin {
            task: AdminTask::Promote { username },
        } => {
            use diesel_async::AsyncConnection;
            let url = &config.database_url;
            let mut conn = db::connect_once(url, config.db_timeout).await?;
            let name = crate::graphql::user::normalize_username(&username);
            let row = conn
                .transaction::<_, diesel::result::Error, _>(async |c| {
                    db::users::set_role(c, &name, "ADMIN").await
                })
                .await?;
            match row {
                Some(u) => {
                    println!("{} (id {}) is now ADMIN", u.username, u.id);
                    Ok(())
                }
                None => anyhow::bail!("no user named {name:?}"),
            }
        }
    }
}

/// Creates the database when missing and applies pending migrations.
pub async fn prepare_database(config: &Config) -> anyhow::Result<()> {
    db::create_database_if_missing(&config.database_url, config.db_timeout).await?;
    let applied = db::migrate(&config.database_url, config.db_timeout).await?;
    for m in &applied {
        tracing::info!(migration = %m, "applied migration");
    }
    Ok(())
}

async fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    let secret = match (&config.jwt_secret, demo) {
        (Some(s), _) => s.as_bytes().to_vec(),
        (None, true) => {
            tracing::warn!(
                "JWT_SECRET is not set: demo mode signs tokens with a random per-process secret"
            );
            Auth::random_secret().map_err(|e| anyhow::anyhow!(e.message()))?
        }
        (None, false) => anyhow::bail!(
            "JWT_SECRET is not set: set it to a random string of at least 32 bytes \
             (e.g. `openssl rand -hex 32`), or run `nexora serve --demo` for a throwaway demo"
        ),
    };
    prepare_database(&config).await?;
    if demo {
        let args = SeedArgs {
            titles: 500,
            users: 200,
            reviews: 5_000,
            likes: 15_000,
            comments: 2_500,
            seed: 42,
        };
        match crate::seed::run(&config.database_url, &args, config.db_timeout).await {
            Ok(r) => tracing::info!(
                titles = r.titles,
                reviews = r.reviews,
                "seeded demo data (every user's password: password123)"
            ),
            Err(e) if e.to_string().contains("already has") => {
                tracing::info!("database has data; not seeding")
            }
            Err(e) => return Err(e),
        }
    }
    let db = Db::connect(&config).await?;
    let addr = config.listen_addr;
    let cache = if demo {
        crate::cache::Cache::connect_or_memory(&config).await
    } else {
        crate::cache::Cache::connect(&config).await
    };
    let app = App::build(config, db, cache, &secret);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr} (set LISTEN_ADDR to another address:port)"))?;
    tracing::info!(
        "listening on http://{addr}/ (GraphiQL), POST http://{addr}/graphql, subscriptions at ws://{addr}/graphql"
    );
    let feed = app.start_feed();
    let closing = app.clone();
    // no Nagle delay: a subscription's small messages, or a response
    // written in parts, go out at once instead of waiting up to 40 ms for
    // the peer's delayed ACK
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, crate::http::router(app.clone()))
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            // upgraded sockets are not HTTP requests: axum does not wait for them
            closing.services.sockets.close_all();
        })
        .await
        .context("serving HTTP")?;
    if !app.services.sockets.closed(Duration::from_secs(5)).await {
        tracing::warn!(
            open = app.services.sockets.open(),
            "WebSocket connections still open after 5 s; exiting anyway"
        );
    }
    feed.stop().await;
    app.services.cache.leave().await;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; draining requests");
    // in-flight requests get this long before the process exits anyway
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_secs(20)).await;
        tracing::warn!("drain timed out; exiting");
        std::process::exit(0);
    });
}
