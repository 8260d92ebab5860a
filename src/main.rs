//! Command-line entry point: `serve`, `check` and `validate`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use readiness_exporter::config::{self, ConfigError};
use readiness_exporter::exporter::Exporter;
use readiness_exporter::report::{self, CheckView, Format};
use readiness_exporter::state::State;
use readiness_exporter::{install_crypto_provider, scheduler, web};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

/// Exit code when every blocking check passes.
const EXIT_PASS: u8 = 0;
/// Exit code when a blocking check does not pass.
const EXIT_BLOCKED: u8 = 1;
/// Exit code for an invalid configuration or another usage error.
const EXIT_INVALID: u8 = 2;
/// Exit code when a second SIGTERM or SIGINT ends `serve` before the checks in flight finished:
/// 128 plus the number of SIGINT, the shell's code for an interrupted command.
const EXIT_INTERRUPTED: i32 = 130;

#[derive(Parser)]
#[command(
    name = "readiness-exporter",
    version,
    about = "Turns a go-live checklist into Prometheus metrics, a status page and a deploy gate"
)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "READINESS_EXPORTER_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Log filter: a level (`info`) or tracing directives (`readiness_exporter=debug`).
    #[arg(
        long,
        global = true,
        default_value = "info",
        env = "READINESS_EXPORTER_LOG_LEVEL",
        value_parser = parse_log_filter
    )]
    log_level: String,
    /// Threads that run checks and serve requests. One keeps the cost of a check lowest; more
    /// help only when TLS handshakes or scrapes of many thousands of checks need more than one
    /// core.
    #[arg(
        long,
        global = true,
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=256),
        env = "READINESS_EXPORTER_WORKER_THREADS"
    )]
    worker_threads: u16,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the exporter: checks on their schedules, metrics, status page, API and gate.
    Serve {
        /// Configuration file (YAML).
        #[arg(long, short)]
        config: PathBuf,
        /// Web configuration file (exporter-toolkit format) that enables TLS, mutual TLS and
        /// basic auth on every endpoint.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config: Option<PathBuf>,
    },
    /// Run every check once, print the results and exit 0 when every blocking check passes,
    /// 1 when one does not, 2 when the configuration is invalid.
    Check {
        /// Configuration file (YAML).
        #[arg(long, short)]
        config: PathBuf,
        /// Run only the checks of this section.
        #[arg(long)]
        section: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Validate a configuration file and exit 0 when it is valid, 2 when it is not.
    Validate {
        /// Configuration file (YAML).
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.worker_threads == 1 {
        use_one_heap_arena();
    }
    init_logging(cli.log_format, &cli.log_level);
    install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(cli.worker_threads))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Serve { config, web_config } => serve(config, web_config).await,
            Command::Check {
                config,
                section,
                format,
            } => check(config, section, format).await,
            Command::Validate { config } => validate(config),
        }
    });
    // Blocking tasks (a hung file read, say) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(code)
}

const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Checks that every directive of a log filter ends in a level, and writes `warning` as `warn`.
/// A bare word that is not a level would be read as a target name and silence every other log
/// line, so it is rejected.
fn parse_log_filter(text: &str) -> Result<String, String> {
    let mut directives = Vec::new();
    for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let (target, level) = match directive.rsplit_once('=') {
            Some((target, level)) => (Some(target), level),
            None => (None, directive),
        };
        let level = match level.to_ascii_lowercase().as_str() {
            "warning" => "warn".to_string(),
            other if LOG_LEVELS.contains(&other) => other.to_string(),
            _ => {
                return Err(format!(
                    "`{level}` is not a log level; use one of {}, or directives such as \
                     `readiness_exporter=debug`",
                    LOG_LEVELS.join(", ")
                ))
            }
        };
        directives.push(match target {
            Some(target) => format!("{target}={level}"),
            None => level,
        });
    }
    if directives.is_empty() {
        return Err("the log filter is empty; use a level such as `info`".to_string());
    }
    Ok(directives.join(","))
}

fn init_logging(format: LogFormat, level: &str) {
    let mut filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|err| {
        eprintln!("warning: invalid --log-level `{level}` ({err}); using `info`");
        tracing_subscriber::EnvFilter::new("info")
    });
    // rustls-platform-verifier logs every rejected certificate at ERROR, which the check
    // reports as its result. The checks log what matters, so this target is off unless the
    // level string names it.
    for target in ["rustls_platform_verifier"] {
        if !level.contains(target) {
            if let Ok(directive) = format!("{target}=off").parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    // kube-client logs the body of a failed response at DEBUG, and a server can echo the
    // bearer token in it. The checks report failed requests themselves.
    if !level.contains("kube_client") {
        if let Ok(directive) = "kube_client=info".parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn print_config_error(err: &ConfigError) {
    eprintln!("error: {err}");
}

async fn serve(path: PathBuf, web_config: Option<PathBuf>) -> u8 {
    match run_server(path, web_config).await {
        Ok(()) => EXIT_PASS,
        Err(err) => {
            match err.downcast_ref::<ConfigError>() {
                Some(config_error) => print_config_error(config_error),
                None => error!(error = format!("{err:#}"), "Exporter stopped"),
            }
            EXIT_INVALID
        }
    }
}

async fn run_server(path: PathBuf, web_config: Option<PathBuf>) -> anyhow::Result<()> {
    let web = match &web_config {
        Some(web_config) => web::WebConfig::load(web_config)?,
        None => web::WebConfig::none(),
    };
    // The handlers come first: a signal during start-up would otherwise end the process at once,
    // with the first runs already in flight.
    let mut hangup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    let mut stops = stop_signals()?;
    // The port is bound before any check runs, so a taken port stops the exporter before it
    // sends a single probe.
    let config = config::load(&path)?;
    let address = config.global.listen_address;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| {
            format!("cannot listen on {address}; free the port or change global.listen_address")
        })?;
    let exporter = Exporter::start_loaded(&path, None, config);
    release_free_heap();
    info!(version = readiness_exporter::metrics::VERSION, address = %address, "Exporter started");

    let reloader = exporter.clone();
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            info!("SIGHUP received, reloading the configuration");
            // Problems are logged by the reload itself.
            let _ = reloader.reload().await;
        }
    });
    let shutdown = async {
        if let Some(name) = stops.recv().await {
            info!(signal = name, "Signal received, stopping");
        }
    };
    web::serve_with(exporter.clone(), listener, Arc::new(web), shutdown).await;

    // Runs in flight finish and store their results; a second signal cuts the wait short.
    info!(
        in_flight = exporter.in_flight(),
        "Draining in-flight checks"
    );
    tokio::select! {
        report = exporter.drain() => {
            if report.cancelled > 0 {
                warn!(in_flight = report.in_flight, cancelled = report.cancelled, "Checks still running after the drain limit were cancelled");
            } else {
                info!(in_flight = report.in_flight, "In-flight checks drained");
            }
        }
        Some(name) = stops.recv() => {
            warn!(signal = name, in_flight = exporter.in_flight(), "Second signal received, exiting without waiting for in-flight checks");
            std::process::exit(EXIT_INTERRUPTED);
        }
    }
    exporter.stop();
    info!("Exporter stopped");
    Ok(())
}

/// Returns the heap's free pages to the kernel.
///
/// Loading the configuration allocates parse trees several times the size of what the checks
/// keep, and glibc leaves the freed pages between live allocations resident: about 0.8 MiB with
/// 1,000 checks, of about 5.6 MiB of anonymous memory (docs/benchmarks.md). Reloads do not call
/// this; the pages they free are reused by later allocations.
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes the allocator's own locks and only releases pages of free
    // chunks, so no live allocation is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Makes every thread allocate from glibc's main heap instead of one arena per thread.
///
/// With its own arena the worker thread kept about 3 KiB of freed, fragmented memory per
/// failing check resident: 1,000 checks that failed on a refused connection held 7.8 MiB of
/// anonymous memory, against 4.6 MiB with one arena (docs/benchmarks.md). Only called with one
/// worker thread, where the threads that allocate rarely contend for the heap's lock, and before
/// any other thread starts.
fn use_one_heap_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator setting; it is called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns a channel that receives the name of each SIGTERM and SIGINT, in order of arrival.
fn stop_signals() -> anyhow::Result<tokio::sync::mpsc::UnboundedReceiver<&'static str>> {
    let mut terminate =
        signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut interrupt =
        signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                Some(()) = terminate.recv() => "SIGTERM",
                Some(()) = interrupt.recv() => "SIGINT",
                else => return,
            };
            if sender.send(name).is_err() {
                return;
            }
        }
    });
    Ok(receiver)
}

async fn check(path: PathBuf, section: Option<String>, format: Format) -> u8 {
    let config = match config::load(&path) {
        Ok(config) => config,
        Err(err) => {
            print_config_error(&err);
            return EXIT_INVALID;
        }
    };
    let checks: Vec<_> = config
        .checks
        .iter()
        .filter(|def| {
            section
                .as_ref()
                .is_none_or(|section| &def.section == section)
        })
        .cloned()
        .collect();
    if let Some(section) = &section {
        if checks.is_empty() {
            let known: Vec<String> = config::sections(&config.checks)
                .into_iter()
                .map(|(name, _)| name)
                .collect();
            eprintln!(
                "error: no checks in section `{section}`; known sections: {}",
                known.join(", ")
            );
            return EXIT_INVALID;
        }
    }

    if config::blocking_count(&checks) == 0 {
        eprintln!("warning: {}", config::NO_BLOCKING_CHECK);
    }
    // Warnings about checks outside `--section` concern checks that do not run.
    let selected = |id: &String| checks.iter().any(|def| &def.id == id);
    for warning in &config.warnings {
        if warning.check.as_ref().is_none_or(selected) {
            eprintln!("warning: {warning}");
        }
    }
    if let Some(vault) = &config.vault {
        vault.start().await;
    }
    let results = scheduler::run_all_once(&checks, config.global.max_concurrent_checks).await;
    let state = Arc::new(State::new());
    state.set_checks(&checks);
    for (def, result) in checks.iter().zip(results) {
        state.record(def, result);
    }
    let now = SystemTime::now();
    let views: Vec<CheckView> = state
        .entries()
        .iter()
        .map(|entry| CheckView::new(entry, now))
        .collect();
    print!("{}", report::render(format, &views));
    if views.iter().any(CheckView::blocks) {
        EXIT_BLOCKED
    } else {
        EXIT_PASS
    }
}

fn validate(path: PathBuf) -> u8 {
    match config::load(&path) {
        Ok(config) => {
            let blocking = config::blocking_count(&config.checks);
            println!(
                "configuration `{}` is valid: {} checks ({blocking} blocking) in {} sections",
                path.display(),
                config.checks.len(),
                config::sections(&config.checks).len()
            );
            if blocking == 0 {
                eprintln!("warning: {}", config::NO_BLOCKING_CHECK);
            }
            for warning in &config.warnings {
                eprintln!("warning: {warning}");
            }
            EXIT_PASS
        }
        Err(err) => {
            print_config_error(&err);
            EXIT_INVALID
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_log_filter;

    #[test]
    fn log_filter_accepts_levels_and_directives() {
        assert_eq!(parse_log_filter("info").unwrap(), "info");
        assert_eq!(parse_log_filter("WARN").unwrap(), "warn");
        assert_eq!(
            parse_log_filter("info,readiness_exporter=debug").unwrap(),
            "info,readiness_exporter=debug"
        );
    }

    #[test]
    fn log_filter_writes_warning_as_warn() {
        assert_eq!(parse_log_filter("warning").unwrap(), "warn");
        assert_eq!(parse_log_filter("kube=warning").unwrap(), "kube=warn");
    }

    #[test]
    fn log_filter_rejects_unknown_level() {
        let error = parse_log_filter("verbose").unwrap_err();
        assert!(error.contains("`verbose` is not a log level"), "{error}");
        assert!(parse_log_filter("readiness_exporter=loud").is_err());
        assert!(parse_log_filter(" , ").is_err());
    }
}
