//! The `nexora` binary: parse the command line, read the environment, set up
//! logging, and hand over to the library.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = nexora::cli::Cli::parse();
    let config = match nexora::config::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nexora: configuration error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    if !matches!(cli.command, Some(nexora::cli::Command::Schema)) {
        nexora::telemetry::init(&config);
    }
    match nexora::server::run(cli, config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nexora: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
