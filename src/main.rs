//! The `loomguard` command line.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use loomguard::moderator::Moderator;
use loomguard::pipeline::{run_files, run_files_serving, FileRun};
use loomguard::rules::RuleSet;
use loomguard::sink::Output;
use loomguard::source::kafka::KafkaConfig;
use loomguard::source::Input;
use loomguard::worker::KafkaRun;

/// Moderates supplier listings of a B2B textile marketplace.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "LOOMGUARD_LOG_FORMAT")]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SummaryFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Decide every listing event of a JSON-lines input.
    Run(Box<RunArgs>),
    /// Work with rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Decide one event and show why, for a moderator.
    Explain {
        /// A file holding one event (the first line of a JSON-lines file), or `-` for stdin.
        #[arg(default_value = "-")]
        input: String,
        #[arg(long, default_value = "rules", env = "LOOMGUARD_RULES")]
        rules: PathBuf,
    },
    /// Write realistic synthetic listing events (JSON lines) for benchmarks.
    Generate {
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value = "-")]
        output: String,
    },
    /// Decode and re-encode every event without checking it: the JSON ceiling `run` is
    /// measured against.
    #[command(hide = true)]
    Ceiling {
        #[arg(long)]
        input: String,
        #[arg(long, default_value = "-")]
        output: String,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// A TOML file with any of these settings (flags and environment variables win over it).
    #[arg(long, env = "LOOMGUARD_CONFIG")]
    config: Option<PathBuf>,
    /// JSON-lines listing events: a path, or `-` for stdin.
    #[arg(
        long,
        env = "LOOMGUARD_INPUT",
        required_unless_present = "brokers",
        conflicts_with = "brokers"
    )]
    input: Option<String>,
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Decisions, one JSON object per line: a path, or `-` for stdout.
    #[arg(long, default_value = "-", env = "LOOMGUARD_OUTPUT")]
    output: String,
    /// Dead letters (records that are not valid events); standard error when not given.
    #[arg(long, env = "LOOMGUARD_DEAD_LETTER")]
    dead_letter: Option<String>,
    /// The rule directory.
    #[arg(long, default_value = "rules", env = "LOOMGUARD_RULES")]
    rules: PathBuf,
    /// Records larger than this many bytes are dead letters.
    #[arg(long, default_value_t = 1024 * 1024, env = "LOOMGUARD_MAX_EVENT_BYTES")]
    max_event_bytes: u64,
    /// Worker threads for the checks (default: one per core).
    #[arg(long, env = "LOOMGUARD_THREADS")]
    threads: Option<usize>,
    /// Records per batch handed to the workers.
    #[arg(long, default_value_t = 2048)]
    batch: usize,
    /// Format of the closing summary on standard error.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Text)]
    summary: SummaryFormat,
    /// Never draw the progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Serve `/metrics`, `/healthz` and `/readyz` on this address (`host:port`; port 0 picks
    /// a free one, logged as `listening`). With images on, the complaint API is served there
    /// too; in file mode the run then goes on serving after its input ends, until SIGTERM or
    /// SIGINT.
    #[arg(long, env = "LOOMGUARD_LISTEN")]
    listen: Option<String>,
    /// Do not reload the rules on SIGHUP or when the rule directory changes.
    #[arg(long, env = "LOOMGUARD_NO_RELOAD")]
    no_reload: bool,
    #[command(flatten)]
    images: ImageArgs,
}

/// Images: fetching, the image index log and the complaint API.
#[derive(clap::Args)]
struct ImageArgs {
    /// Do not fetch, hash or match listing images.
    #[arg(long, env = "LOOMGUARD_NO_IMAGES")]
    no_images: bool,
    /// Directory of the image index log (`image-index.jsonl`), replayed at start; without
    /// it the image index lives in memory only. In Kafka mode the log is a topic instead,
    /// unless `--no-image-topic` is given.
    #[arg(long, env = "LOOMGUARD_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Directory `file://` image URLs must point under (none: `file://` is refused).
    #[arg(long, env = "LOOMGUARD_IMAGE_ROOT")]
    image_root: Option<PathBuf>,
    /// Hosts images may be fetched from (with their subdomains), comma-separated; default any
    /// public host.
    #[arg(long, env = "LOOMGUARD_IMAGE_ALLOW_HOSTS", value_delimiter = ',')]
    image_allow_hosts: Vec<String>,
    /// Let image fetches reach loopback addresses: for tests and local development only.
    #[arg(long, env = "LOOMGUARD_IMAGE_ALLOW_LOOPBACK")]
    image_allow_loopback: bool,
    #[arg(
        long,
        default_value_t = 2000,
        env = "LOOMGUARD_IMAGE_CONNECT_TIMEOUT_MS"
    )]
    image_connect_timeout_ms: u64,
    /// For a whole fetch, redirects and body included.
    #[arg(long, default_value_t = 10_000, env = "LOOMGUARD_IMAGE_TIMEOUT_MS")]
    image_timeout_ms: u64,
    #[arg(long, default_value_t = 10 * 1024 * 1024, env = "LOOMGUARD_IMAGE_MAX_BYTES")]
    image_max_bytes: u64,
    /// Image fetches in flight at most.
    #[arg(long, default_value_t = 16, env = "LOOMGUARD_IMAGE_CONCURRENCY")]
    image_concurrency: usize,
    /// Bearer tokens of the complaint API, comma-separated; none: no access.
    #[arg(
        long,
        env = "LOOMGUARD_API_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_tokens: Vec<String>,
    /// Largest request body the API accepts.
    #[arg(long, default_value_t = loomguard::api::DEFAULT_MAX_BODY_BYTES, env = "LOOMGUARD_API_MAX_BODY_BYTES")]
    api_max_body_bytes: usize,
}

/// Kafka mode: consume listing events from a topic and produce decisions to another.
#[derive(clap::Args)]
struct KafkaArgs {
    /// Kafka bootstrap servers, `host:port,host:port`; runs in Kafka mode instead of on files.
    #[arg(long, env = "LOOMGUARD_BROKERS")]
    brokers: Option<String>,
    #[arg(long, default_value = "loomguard", env = "LOOMGUARD_GROUP_ID")]
    group_id: String,
    #[arg(long, default_value = "listing-events", env = "LOOMGUARD_INPUT_TOPIC")]
    input_topic: String,
    #[arg(
        long,
        default_value = "moderation-decisions",
        env = "LOOMGUARD_OUTPUT_TOPIC"
    )]
    output_topic: String,
    #[arg(
        long,
        default_value = "moderation-dead-letter",
        env = "LOOMGUARD_DEAD_LETTER_TOPIC"
    )]
    dead_letter_topic: String,
    /// The compacted topic holding the duplicate check's live listings, shared by every
    /// worker of the group: replayed at start, tailed while running, appended to.
    #[arg(long, default_value = "listing-state", env = "LOOMGUARD_STATE_TOPIC")]
    state_topic: String,
    /// Keep the duplicate check's state in this worker's memory alone.
    #[arg(long, env = "LOOMGUARD_NO_STATE_TOPIC")]
    no_state_topic: bool,
    /// The compacted topic holding the image index log (listing images, protected originals,
    /// deletes as tombstones), shared by every worker: replayed at start, tailed while
    /// running, appended to by the image check and the complaint API.
    #[arg(long, default_value = "image-index", env = "LOOMGUARD_IMAGE_TOPIC")]
    image_topic: String,
    /// Keep the image index log out of Kafka: in `--state-dir`, or in memory alone.
    #[arg(long, env = "LOOMGUARD_NO_IMAGE_TOPIC")]
    no_image_topic: bool,
    /// Batches whose results may await the broker's acknowledgement at once; when they all
    /// do, the partitions are paused until one is acknowledged.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..), env = "LOOMGUARD_BATCHES_IN_FLIGHT")]
    batches_in_flight: u16,
    /// A librdkafka property for both clients, `key=value` (TLS, SASL, timeouts); repeatable.
    #[arg(long = "kafka-property", value_parser = parse_property)]
    kafka_properties: Vec<(String, String)>,
    /// Milliseconds a batch waits for more messages after its first.
    #[arg(long, default_value_t = 10, env = "LOOMGUARD_LINGER_MS")]
    linger_ms: u64,
    /// Decide in Kafka transactions: results and input offsets commit together, so that a
    /// `read_committed` reader sees each decision once even across crashes.
    #[arg(long, env = "LOOMGUARD_EXACTLY_ONCE")]
    exactly_once: bool,
    /// The producer's transactional id in exactly-once mode (default: unique per process).
    #[arg(long, env = "LOOMGUARD_TRANSACTIONAL_ID")]
    transactional_id: Option<String>,
    /// Seconds allowed after SIGTERM or SIGINT to finish, flush and commit.
    #[arg(long, default_value_t = 30, env = "LOOMGUARD_SHUTDOWN_SECONDS")]
    shutdown_seconds: u64,
}

fn parse_property(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected key=value, got {arg:?}")),
    }
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Report every problem in the rule files, with file and line.
    Check {
        #[arg(default_value = "rules", env = "LOOMGUARD_RULES")]
        dir: PathBuf,
    },
}

// Decoding and deciding an event allocates a few dozen small strings; mimalloc's thread-local
// pools make that a fraction of what the system allocator costs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for rules or a configuration file that do not load, as for a usage error.
const EXIT_INVALID_RULES: u8 = 2;

fn main() -> ExitCode {
    // The configuration file fills in the environment before the command line is parsed;
    // this runs before any thread exists.
    let args: Vec<String> = std::env::args().collect();
    let mut file_properties = Vec::new();
    if let Some(path) = loomguard::config::config_path(&args) {
        match loomguard::config::ConfigFile::load(std::path::Path::new(&path)) {
            Ok(file) => {
                for (name, value) in file.environment() {
                    if std::env::var_os(name).is_none() {
                        std::env::set_var(name, value);
                    }
                }
                file_properties = file.kafka_properties.into_iter().collect();
            }
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::from(EXIT_INVALID_RULES);
            }
        }
    }
    let mut cli = Cli::parse();
    if let Command::Run(args) = &mut cli.command {
        let flags = std::mem::take(&mut args.kafka.kafka_properties);
        args.kafka.kafka_properties = file_properties.into_iter().chain(flags).collect();
    }
    init_logging(cli.log_format);

    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Rules {
            command: RulesCommand::Check { dir },
        } => rules_check(&dir),
        Command::Explain { input, rules } => explain(&input, &rules),
        Command::Generate {
            events,
            seed,
            output,
        } => generate(events, seed, &output),
        Command::Ceiling { input, output } => ceiling(&input, &output),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOOMGUARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, not for a log collector or a test.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Loads the rules, or says on stderr why not.
fn load_rules(dir: &std::path::Path) -> Result<RuleSet, ExitCode> {
    RuleSet::load(dir).map_err(|invalid| {
        eprintln!("error: {invalid}");
        ExitCode::from(EXIT_INVALID_RULES)
    })
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let rules = match load_rules(&args.rules) {
        Ok(rules) => rules,
        Err(code) => return Ok(code),
    };
    tracing::info!(version = %rules.version, dir = %args.rules.display(), "rules loaded");
    let metrics = loomguard::metrics::global();
    metrics.set_rules_version(&rules.version);
    if let Some(threads) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("cannot start the worker threads")?;
    }
    let kafka_config = args
        .kafka
        .brokers
        .as_deref()
        .map(|brokers| kafka_config(&args.kafka, brokers));
    let image_topic = kafka_config.as_ref().and_then(|c| c.image_topic.as_ref());
    if image_topic.is_some() && args.images.state_dir.is_some() && !args.images.no_images {
        anyhow::bail!("in Kafka mode the image index log is the topic --image-topic: give --no-image-topic to keep it in --state-dir instead");
    }
    let image_check = if args.images.no_images {
        None
    } else {
        let check = image_check(&args.images, &rules)?;
        if image_topic.is_some() {
            // Until the worker has replayed the topic, the API must not answer from a part.
            check.expect_replay();
        }
        Some(check)
    };
    let mut moderator = Moderator::new(Arc::new(rules), args.max_event_bytes)?;
    if let Some(images) = &image_check {
        moderator = moderator.with_images(images.clone());
    }
    if args.kafka.brokers.is_some() {
        // A dead letter must fit the producer's default message size (1,000,000 bytes) and
        // the broker's (1 MiB), with room for the record's headers.
        moderator = moderator.with_dead_letter_limit(768 * 1024);
    }
    let moderator = Arc::new(moderator);
    let max_record_bytes = usize::try_from(args.max_event_bytes).unwrap_or(usize::MAX);

    // The runtime runs the Kafka worker, the HTTP listener and the rule reloader; in file
    // mode the pipeline runs on its own threads beside it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // In file mode with images, the listener serves the complaint API as well, beside the
    // pipeline (its suppressions go to the decision output) and on after the input ends;
    // otherwise it serves the operators' routes alone and closes with the run.
    let kafka = args.kafka.brokers.is_some();
    let complaint_api = match (&args.listen, &image_check) {
        (Some(addr), Some(images)) if !kafka => {
            Some(api_server(&args.images, addr, &moderator, images)?)
        }
        _ => None,
    };
    // In Kafka mode the complaint API shares the runtime and the listener with the
    // operators' routes, and closes with the run.
    let kafka_api = match (&args.listen, &image_check, &kafka_config) {
        (Some(_), Some(images), Some(config)) => {
            let outlet = loomguard::api::kafka::KafkaOutlet::new(config)
                .context("cannot start the complaint API's Kafka producer")?;
            let parts = api_parts(&args.images, &moderator, images)?;
            let outlet = loomguard::api::Outlet::Kafka(Arc::new(outlet));
            Some(loomguard::api::router(
                parts.state(outlet),
                parts.max_body_bytes,
            ))
        }
        _ => None,
    };
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = match &args.listen {
        Some(addr) if complaint_api.is_none() => {
            Some(runtime.block_on(start_http(addr, kafka, kafka_api, http_stopped))?)
        }
        _ => None,
    };
    if !args.no_reload {
        let _guard = runtime.enter();
        // Deciding without hot reload is still deciding: say so and go on.
        if let Err(error) = loomguard::reload::spawn(moderator.clone(), args.rules.clone()) {
            tracing::warn!(%error, "rules will not be reloaded while this process runs");
        }
    }

    let summary = match (kafka_config, &args.input) {
        (Some(config), _) => {
            run_kafka(&args, config, &runtime, moderator.clone(), max_record_bytes)
        }
        (None, Some(input)) => {
            let file_run = FileRun {
                input: Input::parse(input),
                output: Output::parse(&args.output),
                dead_letter: args
                    .dead_letter
                    .as_deref()
                    .map_or(Output::Stderr, Output::parse),
                batch_records: args.batch.max(1),
                batch_bytes: 32 * 1024 * 1024,
                max_record_bytes,
                progress: !args.no_progress,
                live: input == "-",
            };
            match &complaint_api {
                Some((listener, router)) => {
                    let serve = move |sender: loomguard::pipeline::DecisionSender| {
                        serve_api(listener, router, sender)
                    };
                    run_files_serving(&file_run, &moderator, Some(&serve))
                }
                None => run_files(&file_run, &moderator),
            }
            .map_err(anyhow::Error::from)
        }
        (None, None) => Err(anyhow::anyhow!("give --input or --brokers")),
    };
    // Graceful shutdown waits for open connections, and a scraper keeps its connection
    // alive: give it a moment, then close regardless.
    let _ = stop_http.send(());
    if let Some(http) = http {
        let grace = std::time::Duration::from_secs(2);
        let closed = runtime.block_on(async { tokio::time::timeout(grace, http).await });
        if let Ok(Ok(Err(error))) = closed {
            tracing::warn!(%error, "the HTTP listener failed");
        }
    }
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    let summary = summary?;
    match args.summary {
        SummaryFormat::Text => eprintln!("{summary}"),
        SummaryFormat::Json => eprintln!("{}", serde_json::to_string(&summary)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// Binds the HTTP listener and serves it on the runtime until `stop` fires: the operators'
/// routes, and `api`'s when given.
async fn start_http(
    addr: &str,
    kafka: bool,
    api: Option<axum::Router>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "listening");
    if api.is_some() {
        tracing::info!(addr = %bound, "complaint API listening");
    }
    let health = loomguard::api::health::router(loomguard::api::health::HealthState {
        metrics: loomguard::metrics::global(),
        kafka,
    });
    let router: axum::Router = match api {
        Some(api) => api.merge(health),
        None => health,
    };
    Ok(tokio::spawn(loomguard::api::health::serve(
        listener,
        router,
        async {
            let _ = stop.await;
        },
    )))
}

/// The image checks over the image index log of `--state-dir`, replayed.
fn image_check(
    args: &ImageArgs,
    rules: &RuleSet,
) -> anyhow::Result<Arc<loomguard::checks::images::ImageCheck>> {
    use loomguard::images::fetch::{FetchSettings, Fetcher};
    let fetcher = Fetcher::new(fetch_settings(args)).context("cannot build the image fetcher")?;
    let _: &FetchSettings = fetcher.settings();
    let hasher = loomguard::images::hasher::ImageHasher::new(fetcher, rules.images.decode, 100_000)
        .context("cannot start the image fetcher")?;
    let mut state = loomguard::images::state::ImageState::new();
    let log = match &args.state_dir {
        Some(dir) => {
            let (log, replay) = loomguard::images::log::ImageLog::open(dir, &mut state)?;
            tracing::info!(
                path = %log.path().display(),
                records = replay.records,
                skipped = replay.skipped,
                listing_images = state.listing_images(),
                original_hashes = state.original_hashes(),
                "image index log replayed"
            );
            Some(log)
        }
        None => None,
    };
    Ok(loomguard::checks::images::ImageCheck::new(
        hasher,
        rules.images.clone(),
        rules.holidays.clone(),
        state,
        log,
    ))
}

fn fetch_settings(args: &ImageArgs) -> loomguard::images::fetch::FetchSettings {
    loomguard::images::fetch::FetchSettings {
        connect_timeout: std::time::Duration::from_millis(args.image_connect_timeout_ms),
        total_timeout: std::time::Duration::from_millis(args.image_timeout_ms),
        max_bytes: args.image_max_bytes,
        concurrency: args.image_concurrency.max(1),
        allow_hosts: args
            .image_allow_hosts
            .iter()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect(),
        file_root: args.image_root.clone(),
        allow_loopback: args.image_allow_loopback,
    }
}

type ApiParts = (std::net::TcpListener, ApiRouterParts);

/// What the API server is built from once the decision output exists.
struct ApiRouterParts {
    moderator: Arc<Moderator>,
    images: Arc<loomguard::checks::images::ImageCheck>,
    fetcher: loomguard::images::fetch::Fetcher,
    tokens: Vec<String>,
    max_body_bytes: usize,
}

impl ApiRouterParts {
    fn state(&self, outlet: loomguard::api::Outlet) -> loomguard::api::ApiState {
        loomguard::api::ApiState {
            moderator: self.moderator.clone(),
            images: self.images.clone(),
            fetcher: self.fetcher.clone(),
            outlet,
            tokens: Arc::new(self.tokens.clone()),
        }
    }
}

/// The API's tokens, fetcher and shared state.
fn api_parts(
    args: &ImageArgs,
    moderator: &Arc<Moderator>,
    images: &Arc<loomguard::checks::images::ImageCheck>,
) -> anyhow::Result<ApiRouterParts> {
    let tokens: Vec<String> = args
        .api_tokens
        .iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() {
        tracing::warn!("no API token configured (LOOMGUARD_API_TOKENS): every request is refused");
    }
    let fetcher = loomguard::images::fetch::Fetcher::new(fetch_settings(args))
        .context("cannot build the API's fetcher")?;
    Ok(ApiRouterParts {
        moderator: moderator.clone(),
        images: images.clone(),
        fetcher,
        tokens,
        max_body_bytes: args.api_max_body_bytes,
    })
}

/// Binds the API's address (before the run starts, so a bad address fails at once).
fn api_server(
    args: &ImageArgs,
    addr: &str,
    moderator: &Arc<Moderator>,
    images: &Arc<loomguard::checks::images::ImageCheck>,
) -> anyhow::Result<ApiParts> {
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let parts = api_parts(args, moderator, images)?;
    tracing::info!(addr = %local, "complaint API listening");
    Ok((listener, parts))
}

fn serve_api(
    listener: &std::net::TcpListener,
    parts: &ApiRouterParts,
    sender: loomguard::pipeline::DecisionSender,
) {
    let emit: loomguard::api::Emit = Arc::new(move |decisions| {
        let outcomes = decisions
            .iter()
            .map(loomguard::moderator::decision_outcome)
            .collect();
        if !sender.send(outcomes) {
            tracing::warn!(
                "the decision output is closed: a complaint's suppressions were not written"
            );
        }
    });
    let state = parts.state(loomguard::api::Outlet::Local(emit));
    let health = loomguard::api::health::router(loomguard::api::health::HealthState {
        metrics: loomguard::metrics::global(),
        kafka: false,
    });
    let router = loomguard::api::router(state, parts.max_body_bytes).merge(health);
    let result = listener
        .try_clone()
        .and_then(|listener| loomguard::api::serve(listener, router));
    if let Err(err) = result {
        tracing::error!(error = %err, "the complaint API stopped");
    }
}

/// Where the worker connects and what it reads and writes, from the flags.
fn kafka_config(kafka: &KafkaArgs, brokers: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers.to_owned(),
        group_id: kafka.group_id.clone(),
        input_topic: kafka.input_topic.clone(),
        output_topic: kafka.output_topic.clone(),
        dead_letter_topic: kafka.dead_letter_topic.clone(),
        state_topic: (!kafka.no_state_topic).then(|| kafka.state_topic.clone()),
        image_topic: (!kafka.no_image_topic).then(|| kafka.image_topic.clone()),
        properties: kafka.kafka_properties.clone(),
        exactly_once: kafka.exactly_once,
        transactional_id: kafka.transactional_id.clone().unwrap_or_else(|| {
            let started = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            format!("{}-{}-{started}", kafka.group_id, std::process::id())
        }),
    }
}

fn run_kafka(
    args: &RunArgs,
    config: KafkaConfig,
    runtime: &tokio::runtime::Runtime,
    moderator: Arc<Moderator>,
    max_record_bytes: usize,
) -> anyhow::Result<loomguard::pipeline::Summary> {
    let kafka = &args.kafka;
    let run = KafkaRun {
        config,
        batch_records: args.batch.max(1),
        linger: std::time::Duration::from_millis(kafka.linger_ms),
        max_record_bytes,
        shutdown_deadline: std::time::Duration::from_secs(kafka.shutdown_seconds),
        batches_in_flight: usize::from(kafka.batches_in_flight),
    };
    Ok(runtime.block_on(loomguard::worker::run_kafka(run, moderator))?)
}

fn rules_check(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let rules = match RuleSet::load(dir) {
        Ok(rules) => rules,
        Err(invalid) => {
            for problem in &invalid.problems {
                println!("{problem}");
            }
            eprintln!("{} problem(s) in {}", invalid.problems.len(), dir.display());
            return Ok(ExitCode::from(EXIT_INVALID_RULES));
        }
    };
    let moderator = match Moderator::new(Arc::new(rules), u64::MAX) {
        Ok(moderator) => moderator,
        Err(err) => {
            println!("{}: {err}", dir.display());
            return Ok(ExitCode::from(EXIT_INVALID_RULES));
        }
    };
    let rules = moderator.rules();
    for pack in &rules.terms.packs {
        let terms: usize = pack.rules.iter().map(|r| r.terms.len()).sum();
        println!(
            "{}: {} rules, {} terms, {} allow terms, {} context exceptions",
            pack.pack.name(),
            pack.rules.len(),
            terms,
            pack.allow.len(),
            pack.contexts.len()
        );
    }
    println!("ok: rules version {}", rules.version);
    Ok(ExitCode::SUCCESS)
}

fn explain(input: &str, rules_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let rules = match load_rules(rules_dir) {
        Ok(rules) => rules,
        Err(code) => return Ok(code),
    };
    let moderator = Moderator::new(Arc::new(rules), u64::MAX)?;
    let mut text = Vec::new();
    match Input::parse(input) {
        Input::Stdin => std::io::stdin().read_to_end(&mut text)?,
        Input::Path(path) => {
            text =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            text.len()
        }
    };
    let colour = std::io::stdout().is_terminal();
    let (report, decided) = loomguard::explain::explain_input(&moderator, &text, colour);
    std::io::stdout().write_all(report.as_bytes())?;
    Ok(if decided {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn generate(events: u64, seed: u64, output: &str) -> anyhow::Result<ExitCode> {
    let mut out = Output::parse(output).create()?;
    loomguard::generate::write_events(events, seed, |line| out.write_record(line))?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn ceiling(input: &str, output: &str) -> anyhow::Result<ExitCode> {
    let summary = loomguard::pipeline::run_ceiling(&Input::parse(input), &Output::parse(output))?;
    eprintln!("{}", serde_json::to_string(&summary)?);
    Ok(ExitCode::SUCCESS)
}
