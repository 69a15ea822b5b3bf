//! Command line: `serve` (default), `migrate`, `seed`, `admin promote`.

use clap::{Parser, Subcommand};

use crate::config::Config;

/// GraphQL API for a review platform, with a Redis query-result cache.
#[derive(Debug, Parser)]
#[command(name = "nexora", version, about, after_help = Config::help_text())]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the database if missing, apply migrations, serve HTTP.
    Serve {
        /// Demo mode: seed an empty database with sample data; allow running
        /// without JWT_SECRET (a random one per process); fall back to the
        /// in-process cache when Redis does not answer.
        #[arg(long)]
        demo: bool,
    },
    /// Create the database if missing and apply pending migrations.
    Migrate,
    /// Fill the database with deterministic, realistic sample data.
    Seed(SeedArgs),
    /// Print the schema (SDL) the server serves: `nexora schema > schema.graphql`.
    Schema,
    /// Administrative tasks.
    Admin {
        /// The task.
        #[command(subcommand)]
        task: AdminTask,
    },
}

/// Sizes and seed of generated data.
#[derive(Clone, Debug, clap::Args)]
pub struct SeedArgs {
    /// Number of titles.
    #[arg(long, default_value_t = 500)]
    pub titles: u32,
    /// Number of users (all with the demo-only password `password123`).
    #[arg(long, default_value_t = 200)]
    pub users: u32,
    /// Number of reviews (at most one per user and title).
    #[arg(long, default_value_t = 5_000)]
    pub reviews: u32,
    /// Number of likes.
    #[arg(long, default_value_t = 15_000)]
    pub likes: u32,
    /// Number of comments.
    #[arg(long, default_value_t = 2_500)]
    pub comments: u32,
    /// Random seed: the same seed and sizes give the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Administrative tasks.
#[derive(Debug, Subcommand)]
pub enum AdminTask {
    /// Give a user the ADMIN role.
    Promote {
        /// The username.
        username: String,
    },
}
