//! The `stonegate` command: `serve`, `check-config` and the key and token
//! tools. It sets up the process: logging subscriber,
//! runtime, the shutdown signals (SIGTERM, Ctrl-C) and exit codes. Reloading
//! on SIGHUP belongs to the running server (`server::run`), which owns what a
//! reload replaces.

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
        #[command(flatten)]
        sources: SourceArgs,
    },
    /// Validate a configuration without starting anything; with
    /// `--oslo-config`, explain where every imported option came from.
    CheckConfig {
        /// Configuration file (TOML); same as `--config`.
        #[arg(conflicts_with = "config")]
        file: Option<PathBuf>,
        #[command(flatten)]
        sources: SourceArgs,
    },
    /// Fernet token tools.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Fernet key repository tools.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print a new random session key (for `[session] keys_file`).
    SessionKey,
    /// `[authorization]` tools.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Explain the `[authorization]` decision for a request, as
    /// oslopolicy-checker does: each rule tried and why it matched or failed.
    /// Exit 0 when allowed, 1 when denied.
    Check {
        #[command(flatten)]
        sources: SourceArgs,
        /// A file holding the caller's token (validated as the proxy would);
        /// else the environment variable STONEGATE_TOKEN.
        #[arg(long, conflicts_with = "credentials")]
        token_file: Option<PathBuf>,
        /// The credentials as a JSON object instead of a token
        /// (`{"roles": ["reader"], "project_id": "p1"}`).
        #[arg(long)]
        credentials: Option<String>,
        /// The request's method.
        method: String,
        /// The request's path (as the client sends it; decided on canonical).
        path: String,
    },
}

/// Where the configuration comes from (see `config::Sources`).
#[derive(clap::Args)]
struct SourceArgs {
    /// Configuration file (TOML).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// An existing service's oslo.config file (`nova.conf`) or paste.deploy
    /// file (`api-paste.ini`) whose `[keystone_authtoken]` / auth_token filter
    /// section supplies stonegate's `[keystone_authtoken]`. Repeatable; later
    /// files win, a paste filter section wins over all.
    #[arg(long = "oslo-config", value_name = "FILE")]
    oslo: Vec<PathBuf>,
    /// Proxy address (`listen`), when no TOML file gives it.
    #[arg(long)]
    listen: Option<String>,
    /// Protected service URL (`upstream`), when no TOML file gives it.
    #[arg(long)]
    upstream: Option<String>,
    /// Admin listener address (`admin_listen`), when no TOML file gives it.
    #[arg(long)]
    admin_listen: Option<String>,
}

impl SourceArgs {
    fn into_sources(self, file: Option<PathBuf>) -> config::Sources {
        config::Sources {
            toml: self.config.or(file),
            oslo: self.oslo,
            listen: self.listen,
            upstream: self.upstream,
            admin_listen: self.admin_listen,
        }
    }
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Decrypt a Fernet token with a key repository, or verify a JWS token
    /// with a public key repository, and print what it holds.
    Inspect {
        /// Keystone's Fernet key repository (for Fernet tokens).
        #[arg(long, required_unless_present = "public_key_repository")]
        key_repository: Option<PathBuf>,
        /// Keystone's JWS public key repository (for JWS tokens).
        #[arg(long)]
        public_key_repository: Option<PathBuf>,
        /// Keystone's `[auth] methods`, comma-separated, in order (default: Keystone's).
        #[arg(long, value_delimiter = ',')]
        methods: Option<Vec<String>>,
        /// The token; `-` (the default) reads it from standard input, which
        /// keeps it out of the shell history and the process list.
        #[arg(default_value = "-")]
        token: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Report a key repository's state: keys, their roles, problems.
    Check {
        /// Keystone's Fernet key repository.
        dir: PathBuf,
    },
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// A configuration error, prefixed with the sources unless it already names them.
fn describe(sources: &config::Sources, e: &config::Error) -> String {
    match e {
        config::Error::Read { .. } | config::Error::Parse { .. } => e.to_string(),
        config::Error::Invalid(_) => format!("{}: {e}", sources.describe()),
    }
}

/// `check-config`: the explanation of imported options, then the verdict.
fn check_config(sources: &config::Sources) -> ExitCode {
    let loaded = match sources.load() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{}", describe(sources, &e));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(imported) = &loaded.imported {
        println!("[keystone_authtoken] imported from:");
        for f in &imported.files {
            println!("  {}", f.display());
        }
        println!("options used:");
        for (key, value) in &imported.table {
            let shown = if config::oslo::is_secret(key) {
                "[redacted]".to_owned()
            } else {
                value.to_string()
            };
            let origin = imported
                .origins
                .get(key)
                .map_or_else(String::new, ToString::to_string);
            println!("  {key} = {shown}    <- {origin}");
        }
    }
    match loaded.build(&env) {
        Ok(s) => {
            let upstream = s
                .proxy
                .upstream
                .as_ref()
                .map_or("none (forward-auth only)".to_string(), ToString::to_string);
            let shared = s
                .auth
                .shared_cache
                .as_ref()
                .map_or("none".to_string(), |c| {
                    format!("{} ({})", c.backend.label(), c.strategy.as_str())
                });
            println!(
                "{}: ok (listen {}, upstream {}, admin {}, forward-auth endpoints {}, Keystone {}, shared cache {})",
                sources.describe(),
                s.proxy.listen,
                upstream,
                s.proxy.admin_listen,
                s.forward_auth.len(),
                s.keystone.auth_url,
                shared
            );
            if s.keystone.auth_version == stonegate::keystone::AuthVersion::V2 {
                println!(
                    "Identity API v2.0 (auth_version): legacy validation, GET /v2.0/tokens/{{token}}"
                );
            }
            let services = &s.auth.services;
            for (name, profile) in &services.by_name {
                println!(
                    "envoy-grpc service profile {name:?} (context_extensions {}: {name}): service_type {}, {} public routes",
                    services.selector,
                    profile.service_type.as_deref().unwrap_or("none"),
                    if profile.public_routes.is_empty() { "no" } else { "its own" },
                );
            }
            if let Some(k) = &s.kubernetes {
                explain_kube_policy(k);
            }
            for w in &s.warnings {
                println!("warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", describe(sources, &e));
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file, sources } => check_config(&sources.into_sources(file)),
        Command::Token(TokenCommand::Inspect {
            key_repository,
            public_key_repository,
            methods,
            token,
        }) => inspect(
            key_repository.as_deref(),
            public_key_repository.as_deref(),
            methods,
            &token,
        ),
        Command::Keys(KeysCommand::Check { dir }) => keys_check(&dir),
        Command::Policy(PolicyCommand::Check {
            sources,
            token_file,
            credentials,
            method,
            path,
        }) => policy_check(
            &sources.into_sources(None),
            token_file.as_deref(),
            credentials.as_deref(),
            &method,
            &path,
        ),
        Command::SessionKey => match stonegate::session::keys::SessionKeys::generate() {
            Ok(k) => {
                println!("{k}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("stonegate session-key: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve { sources } => {
            let sources = sources.into_sources(None);
            let loaded = match sources.load() {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("{}", describe(&sources, &e));
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let settings = match loaded.build(&env) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{}", describe(&sources, &e));
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let registry = prometheus::Registry::new();
            let metrics = match stonegate::metrics::Metrics::register(&registry) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("cannot register the metrics: {e}");
                    return ExitCode::FAILURE;
                }
            };
            // Keep the guards alive: dropping them flushes and stops the
            // log writer and the span export threads.
            let (_log_guard, _trace_guard) =
                match init_logging(settings.proxy.log_json, settings.tracing.as_ref(), &metrics) {
                    Ok(g) => g,
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::from(EXIT_CONFIG);
                    }
                };
            raise_descriptor_limit();

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
            let workers = match WorkerThreads::start(settings.proxy.worker_threads()) {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("cannot start the worker threads: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let reload = || sources.build(&env);
            let served = runtime.block_on(async {
                let listeners = stonegate::server::Listeners::bind(&settings.proxy).await?;
                stonegate::server::run_registered(
                    settings,
                    listeners,
                    workers.serving(),
                    shutdown_signal(),
                    reload,
                    registry,
                    metrics,
                )
                .await
            });
            // The drain is over: what is left on the workers closes here.
            workers.stop();
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "stonegate failed");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `check-config`'s account of `[kubernetes] policy_file`: the rule count,
/// one line per rule, then the parts that can never apply.
fn explain_kube_policy(k: &stonegate::kube::Settings) {
    match (&k.policy_file, &k.policy) {
        (Some(file), Some(policy)) => {
            println!(
                "[kubernetes] policy_file {file}: {} rule(s) (k8s-keystone-auth's format); a SubjectAccessReview no rule allows is no opinion",
                policy.len()
            );
            for line in policy.describe() {
                println!("  {line}");
            }
            for line in policy.warnings() {
                println!("warning: [kubernetes] policy_file {line}");
            }
        }
        _ => println!(
            "[kubernetes] no policy_file: every SubjectAccessReview is no opinion (RBAC decides)"
        ),
    }
}

/// `policy check`: the decision for `method` + `path`, explained.
fn policy_check(
    sources: &config::Sources,
    token_file: Option<&std::path::Path>,
    credentials: Option<&str>,
    method: &str,
    path: &str,
) -> ExitCode {
    use stonegate::{path::Canonical, policy};
    let fail = |msg: String| {
        eprintln!("stonegate policy check: {msg}");
        ExitCode::from(EXIT_CONFIG)
    };
    let settings = match sources.build(&env) {
        Ok(s) => s,
        Err(e) => return fail(describe(sources, &e)),
    };
    let Some(authz) = settings.auth.authorization.clone() else {
        return fail(format!(
            "{}: no [authorization] section",
            sources.describe()
        ));
    };
    let Ok(method) = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
        return fail(format!("{method:?} is not an HTTP method"));
    };
    let canonical = match stonegate::path::target_path(path).and_then(Canonical::parse) {
        Ok(c) => c,
        Err(e) => {
            println!("path {path:?} is refused with 400 before any decision: {e}");
            return ExitCode::FAILURE;
        }
    };
    let decoded = canonical.decoded();
    if settings
        .auth
        .public_routes
        .is_public(&method, decoded, &http::HeaderMap::new())
    {
        println!("{method} {decoded} is a public route: no token, no authorization");
        return ExitCode::SUCCESS;
    }
    let explain = |creds: &dyn policy::Credentials| {
        println!("credentials:");
        for line in policy::eval::describe(creds) {
            println!("  {line}");
        }
        let lines = authz.explain(creds, &method, decoded);
        for line in &lines {
            println!("{line}");
        }
        let allowed = lines
            .last()
            .is_some_and(|l| l.starts_with("decision: allow"));
        if allowed {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    };
    if let Some(json) = credentials {
        return match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json) {
            Ok(map) => explain(&map),
            Err(e) => fail(format!("--credentials is not a JSON object: {e}")),
        };
    }
    let token = match token_file {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) => t.trim().to_owned(),
            Err(e) => return fail(format!("cannot read {}: {e}", f.display())),
        },
        None => match env("STONEGATE_TOKEN") {
            Some(t) => t.trim().to_owned(),
            None => {
                return fail(
                    "give --token-file FILE, the environment variable STONEGATE_TOKEN, or --credentials JSON"
                        .into(),
                )
            }
        },
    };
    let Ok(value) = http::HeaderValue::from_str(&token) else {
        return fail("the token is not a valid header value".into());
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async {
        let metrics = stonegate::metrics::Metrics::unregistered();
        let stack = match stonegate::stack::build(&settings, &metrics) {
            Ok(s) => s,
            Err(e) => return fail(e.to_string()),
        };
        let mut headers = http::HeaderMap::new();
        headers.insert("x-auth-token", value);
        match stack
            .gate
            .validator
            .identify(&method, decoded, &headers, None)
            .await
        {
            Ok(ctx) => {
                let creds = policy::IdentityCredentials {
                    user: ctx.user.as_deref(),
                    service: None,
                };
                explain(&creds)
            }
            Err(e) => {
                println!("the token is refused before any authorization: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn inspect(
    fernet_dir: Option<&std::path::Path>,
    jws_dir: Option<&std::path::Path>,
    methods: Option<Vec<String>>,
    token: &str,
) -> ExitCode {
    use stonegate::token::{fernet, jws, jws_keys::PublicKeys, keys::KeySet, payload};
    let token = if token == "-" {
        let mut buf = String::new();
        if std::io::Read::read_to_string(&mut std::io::stdin(), &mut buf).is_err() {
            eprintln!("cannot read the token from standard input");
            return ExitCode::FAILURE;
        }
        buf.trim().to_owned()
    } else {
        token.trim().to_owned()
    };
    let opened = if jws::looks_like_jws(&token) {
        let Some(dir) = jws_dir else {
            eprintln!("a JWS token: pass Keystone's public keys with --public-key-repository");
            return ExitCode::FAILURE;
        };
        let keys = match PublicKeys::load(dir) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        match jws::verify(&token, &keys, stonegate::token::MAX_TOKEN_LEN) {
            Ok(v) => (v.payload, v.issued_at, serde_json::json!(&*v.key), "jws"),
            Err(e) => {
                eprintln!("token does not verify with {} ({e})", dir.display());
                return ExitCode::FAILURE;
            }
        }
    } else {
        let Some(dir) = fernet_dir else {
            eprintln!("a Fernet token: pass Keystone's key repository with --key-repository");
            return ExitCode::FAILURE;
        };
        let keys = match KeySet::load(dir) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let methods = methods.map(payload::Methods::new).unwrap_or_default();
        let decrypted = match fernet::decrypt(&token, &keys, stonegate::token::MAX_TOKEN_LEN) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("token does not decrypt with {} ({e})", dir.display());
                return ExitCode::FAILURE;
            }
        };
        match payload::decode(&decrypted.plaintext, &methods) {
            Ok(p) => (
                p,
                i64::try_from(decrypted.timestamp).unwrap_or(i64::MAX),
                serde_json::json!(decrypted.key_id),
                "fernet",
            ),
            Err(e) => {
                eprintln!("decrypted, but the payload is not Keystone's: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let (p, issued, key, format) = opened;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let iso = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .ok()
            .and_then(|d| {
                d.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| t.to_string())
    };
    let out = serde_json::json!({
        "format": format,
        "key": key,
        "payload_version": p.version,
        "user_id": p.user_id,
        "methods": p.methods,
        "scope": format!("{:?}", p.scope),
        "trust_id": p.trust_id,
        "app_cred_id": p.app_cred_id,
        "federation": p.federation.as_ref().map(|f| serde_json::json!({
            "group_ids": f.group_ids, "idp_id": f.idp_id, "protocol_id": f.protocol_id})),
        "access_token_id": p.access_token_id,
        "thumbprint": p.thumbprint,
        "audit_ids": p.audit_ids,
        "issued_at": iso(issued),
        "expires_at": iso(p.expires_at),
        "expired": p.is_expired(now, 0),
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    ExitCode::SUCCESS
}

fn keys_check(dir: &std::path::Path) -> ExitCode {
    use std::os::unix::fs::PermissionsExt;
    match stonegate::token::keys::KeySet::load(dir) {
        Ok(keys) => {
            let ids = keys.ids();
            let primary = ids.first().copied().unwrap_or(0);
            println!("{}: {} key(s)", dir.display(), ids.len());
            for id in &ids {
                let role = match *id {
                    0 => "staged (next primary)",
                    i if i == primary => "primary (encrypts new tokens)",
                    _ => "secondary (decrypts only)",
                };
                println!("  {id:>6}  {role}");
            }
            let mut ok = true;
            if !ids.contains(&0) {
                println!("warning: no staged key 0 (a rotation may be in progress)");
            }
            if ids.len() < 2 {
                println!("warning: a single key: the next rotation invalidates every token");
                ok = false;
            }
            if let Ok(meta) = std::fs::metadata(dir) {
                if meta.permissions().mode() & 0o007 != 0 {
                    println!(
                        "warning: the repository is world-accessible; Fernet keys can mint tokens"
                    );
                    ok = false;
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as nginx's
/// `worker_rlimit_nofile` and Go's runtime do: the soft default (often 1024)
/// dates from `select()`, which stonegate does not use, and would cap
/// `max_connections` far below its default. A refusal is logged and the
/// limit kept (the connection caps follow whatever limit there is).
fn raise_descriptor_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::info!(
            from = limit.current,
            to = limit.maximum,
            "raised the soft descriptor limit (RLIMIT_NOFILE) to the hard limit"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            soft = limit.current,
            hard = limit.maximum,
            "cannot raise the soft descriptor limit (RLIMIT_NOFILE) to the hard limit"
        ),
    }
}

/// The process's subscriber: log lines on stderr, and with `[tracing]
/// otlp_endpoint` the span export layer. Logs go through a non-blocking
/// writer (a background thread), so a slow terminal or pipe never stalls
/// request handling; lines are dropped, not queued without bound, if the
/// writer falls far behind. Without it no layer
/// wants stonegate's spans, so they are never made.
fn init_logging(
    json: bool,
    tracing: Option<&stonegate::trace::Settings>,
    metrics: &stonegate::metrics::Metrics,
) -> Result<
    (
        tracing_appender::non_blocking::WorkerGuard,
        Option<stonegate::server::otlp::Guard>,
    ),
    stonegate::server::otlp::Error,
> {
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, Layer};
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Spans are for the exporter, not for the log lines' context.
    let filter = match format!("{}=off", stonegate::trace::TARGET).parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    let fmt = if json {
        fmt.json().flatten_event(true).with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let (otel, trace_guard) = match tracing {
        Some(t) => {
            let (layer, g) = stonegate::server::otlp::layer(t, metrics.trace_spans.clone())?;
            (Some(layer), Some(g))
        }
        None => (None, None),
    };
    tracing_subscriber::registry().with(fmt).with(otel).init();
    Ok((guard, trace_guard))
}

/// The threads client connections are served on (`[proxy] worker_threads`),
/// each running a single-threaded runtime, so a connection, its requests and
/// its upstream connections stay on one thread. The main runtime keeps the
/// accept loops, the admin listener and the background tasks.
struct WorkerThreads {
    handles: Vec<tokio::runtime::Handle>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl WorkerThreads {
    fn start(n: usize) -> std::io::Result<Self> {
        let mut workers = Self {
            handles: Vec::with_capacity(n),
            stops: Vec::with_capacity(n),
            threads: Vec::with_capacity(n),
        };
        for i in 0..n {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            workers.handles.push(runtime.handle().clone());
            workers.stops.push(stop);
            let thread = std::thread::Builder::new()
                .name(format!("stonegate-worker-{i}"))
                .spawn(move || {
                    runtime.block_on(async {
                        tokio::select! {
                            _ = stopped => {}
                            () = stonegate::server::timer_heartbeat() => {}
                        }
                    });
                    // Dropping the runtime closes the connections left.
                })?;
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    fn serving(&self) -> stonegate::server::Workers {
        stonegate::server::Workers::new(self.handles.iter().cloned())
    }

    /// Stops every worker and waits for its thread to end.
    fn stop(self) {
        drop(self.stops);
        for t in self.threads {
            let _ = t.join();
        }
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
