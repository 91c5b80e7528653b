//! The `stonegate` command: `serve` and `check-config`. The only code that
//! touches the process: logging subscriber, runtime, signals, exit codes.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use stonegate::config;

/// Exit code for a configuration error (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "stonegate",
    version,
    about = "Keystone token-validating reverse proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy and the admin listener.
    Serve {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file without starting anything.
    CheckConfig {
        /// Configuration file (TOML).
        file: PathBuf,
    },
}

fn load(path: &std::path::Path) -> Result<config::Settings, config::Error> {
    config::File::load(path)?.build(&|k| std::env::var(k).ok())
}

/// A configuration error, prefixed with the file name unless it already names it.
fn describe(file: &std::path::Path, e: &config::Error) -> String {
    match e {
        config::Error::Read { .. } | config::Error::Parse { .. } => e.to_string(),
        config::Error::Invalid(_) => format!("{}: {e}", file.display()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match load(&file) {
            Ok(s) => {
                let upstream = s
                    .proxy
                    .upstream
                    .as_ref()
                    .map_or("none (forward-auth only)".to_string(), ToString::to_string);
                println!(
                    "{}: ok (listen {}, upstream {}, admin {}, forward-auth endpoints {}, Keystone {})",
                    file.display(),
                    s.proxy.listen,
                    upstream,
                    s.proxy.admin_listen,
                    s.proxy.forward_auth.len(),
                    s.keystone.auth_url
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}", describe(&file, &e));
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Serve { config } => {
            let settings = match load(&config) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{}", describe(&config, &e));
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            init_logging(settings.proxy.log_json);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(stonegate::server::run(settings, shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "stonegate failed");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
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
    tracing::info!("shutdown signal received");
}
