//! hookbus router: fans each event out to the per-hook queues of the hooks that want it,
//! and serves the admin API.
//!
//! - [`consume`]: consume → decide → publish → settle, with the connection supervisor.
//! - [`plan`]: the pure routing decision.
//! - [`api`]: Logto's hooks API and dead letters, under `/api/hooks`, and the portal's API.
//! - [`console`]: the web console at `/console` and the portal page at `/portal/:token`.
//! - [`portal`]: signed, expiring portal links, each scoped to one hook.
//! - [`dead_letters`]: listing and replaying dead letters (API and command line).
//! - [`deleted_queues`]: removing a deleted hook's queues, crash-safe.
//! - [`activity`], [`idle_queues`]: a hook's queue exists only while it is active: made
//!   active before publishing, deleted when idle and empty.
//! - [`lease`]: the promise that this router routes by the current configuration, so that
//!   an admin change answers only once every router applies it.
//! - [`run`]: the `router` process: routing, admin API, `/healthz`, `/readyz`, `/metrics`.

pub mod activity;
pub mod api;
pub mod console;
pub mod consume;
pub mod dead_letters;
pub mod deleted_queues;
pub mod depths;
pub mod idle_queues;
pub mod lease;
pub mod metrics;
pub mod plan;
pub mod portal;

use std::sync::Arc;
use std::time::Duration;

use hookbus_runtime::config::{parse_duration, ActivityConfig, CommonConfig, TargetConfig};
use hookbus_runtime::health::Readiness;
use hookbus_runtime::logs::DeliveryLogs;
use hookbus_runtime::ops;
use hookbus_runtime::overview;
use hookbus_runtime::store::{self, HookCache, StoreError};
use hookbus_runtime::telemetry::{Telemetry, TelemetryConfig, TelemetryError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "router",
    about = "hookbus router: events to per-hook queues, and the hooks admin API"
)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonConfig,
    #[command(flatten)]
    pub targets: TargetConfig,
    #[command(flatten)]
    pub activity: ActivityConfig,
    /// Address of the admin API, /healthz and /metrics.
    #[arg(long, env = "HOOKBUS_ROUTER_LISTEN", default_value = "127.0.0.1:7802")]
    pub listen: String,
    /// Bearer token of the admin API.
    #[arg(long, env = "HOOKBUS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Serve the admin API without a token when none is set: local development only.
    #[arg(long, env = "HOOKBUS_ADMIN_OPEN", default_value = "false",
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub admin_open: bool,
    /// Events routed concurrently (the events channel's prefetch).
    #[arg(long, env = "HOOKBUS_ROUTER_PREFETCH", default_value_t = 256)]
    pub prefetch: u16,
    /// How long a rotated signing key keeps signing beside the new one.
    #[arg(long, env = "HOOKBUS_KEY_ROTATION_OVERLAP", default_value = "24h", value_parser = parse_duration)]
    pub key_rotation_overlap: Duration,
    /// Time limit of a `POST /api/hooks/:id/test` attempt.
    #[arg(long, env = "HOOKBUS_ATTEMPT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub attempt_timeout: Duration,
    /// On shutdown, how long events under way may take to settle.
    #[arg(long, env = "HOOKBUS_DRAIN_DEADLINE", default_value = "30s", value_parser = parse_duration)]
    pub drain_deadline: Duration,
    /// How long a router may route without confirming with Redis that its hook
    /// configuration is current; an admin change waits at most this long for a router that
    /// stopped answering.
    #[arg(long, env = "HOOKBUS_ROUTER_LEASE", default_value = "3s", value_parser = parse_duration)]
    pub lease: Duration,
    #[command(flatten)]
    pub console: console::ConsoleConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Operator tasks; with none, `router` runs the service.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Inspect and replay a hook's dead letters.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum DeadLetterCommand {
    /// Print dead letters, oldest first, as JSON lines.
    List {
        #[command(flatten)]
        which: WhichDeadLetters,
        /// Print at most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Replay dead letters: a hook's back to its queue, the events' back to the router.
    Replay {
        #[command(flatten)]
        which: WhichDeadLetters,
        /// Only these events (repeatable).
        #[arg(long = "event")]
        events: Vec<String>,
        /// Only the dead letters of these event ids, as `list` prints them (repeatable).
        #[arg(long = "event-id")]
        event_ids: Vec<String>,
        /// Dead-lettered at or after (epoch ms).
        #[arg(long)]
        since: Option<i64>,
        /// Dead-lettered at or before (epoch ms).
        #[arg(long)]
        until: Option<i64>,
    },
}

/// A hook's dead letters, or the events' (one of the two).
#[derive(clap::Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct WhichDeadLetters {
    /// The hook's id (as `GET /api/hooks` shows it).
    #[arg(long)]
    pub hook: Option<String>,
    /// The events' dead letters (`<prefix>.events.dead`): events the router could not route,
    /// and deliveries whose own dead letter could not be written.
    #[arg(long)]
    pub events_queue: bool,
}

impl Config {
    /// Parses `router`'s command line. The settings every process shares (`--prefix`,
    /// `--amqp-url`, `--redis-url`) are global, so that an operator command takes them
    /// after its own name too: `router dead-letters list --hook ID --prefix p`.
    pub fn try_parse_args<I, T>(args: I) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{Args, CommandFactory, FromArgMatches};
        let shared = CommonConfig::augment_args(clap::Command::new("shared"));
        let is_shared = |id: &clap::Id| shared.get_arguments().any(|a| a.get_id() == id);
        let command = Config::command().mut_args(|arg| {
            let global = is_shared(arg.get_id());
            arg.global(global)
        });
        Config::from_arg_matches(&command.try_get_matches_from(args)?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("HOOKBUS_ADMIN_TOKEN is not set: the admin API would be open to anyone (HOOKBUS_ADMIN_OPEN=true opens it on purpose, for local development)")]
    NoToken,
    #[error("hook store: {0}")]
    Store(#[from] StoreError),
    #[error("serving HTTP: {0}")]
    Http(#[from] std::io::Error),
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
}

/// Runs the router until `shutdown` fires; in-flight events are settled before it returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let token: Option<Arc<str>> = config
        .admin_token
        .clone()
        .filter(|t| !t.is_empty())
        .map(Into::into);
    match (&token, config.admin_open) {
        (None, false) => return Err(RunError::NoToken),
        (None, true) => tracing::warn!(
            "HOOKBUS_ADMIN_OPEN: the admin API is open to anyone (local development only)"
        ),
        (Some(_), _) => {}
    }
    let readiness = Readiness::default();
    // Background work, awaited before `run` returns (the lease is given up on the way).
    let tasks = TaskTracker::new();
    let (store, cache) = store::start(
        &config.common.redis_url,
        config.common.redis_keys(),
        &readiness,
        &tasks,
        &shutdown,
    )?;
    let metrics = metrics::Metrics::new();
    let telemetry = Telemetry::start(&config.telemetry, "hookbus-router", &metrics.registry)?;
    tasks.spawn(export_cache_metrics(
        cache.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));

    tasks.spawn(deleted_queues::sweep(
        config.common.amqp_url.clone(),
        store.clone(),
        config.common.topology(),
        shutdown.clone(),
    ));

    let activity = match config.activity.idle() {
        Some(idle) => {
            let store = hookbus_runtime::activity::HookActivity::new(
                store.pool().clone(),
                config.common.redis_keys(),
                idle,
            );
            // Before the admin API takes a hook: only hooks from before are seeded.
            idle_queues::seed(&store).await;
            tasks.spawn(idle_queues::sweep(
                config.common.amqp_url.clone(),
                store.clone(),
                config.common.topology(),
                metrics.clone(),
                shutdown.clone(),
            ));
            Some(Arc::new(activity::Activator::new(store)))
        }
        None => None,
    };

    let lease = lease::Lease::default();
    tasks.spawn(lease::keep(
        store.clone(),
        cache.clone(),
        uuid::Uuid::now_v7().simple().to_string(),
        config.lease.max(Duration::from_millis(500)),
        lease.clone(),
        readiness.flag("lease"),
        shutdown.clone(),
    ));
    let routed = overview::RoutedCounter::default();
    tasks.spawn(routed.clone().flush_every_second(
        store.pool().clone(),
        config.common.redis_keys(),
        shutdown.clone(),
    ));
    tasks.spawn(overview::announce(
        store.pool().clone(),
        config.common.redis_keys(),
        "router",
        readiness.clone(),
        shutdown.clone(),
    ));
    let ctx = Arc::new(consume::RouterCtx {
        topology: config.common.topology(),
        lease,
        cache: cache.clone(),
        metrics: metrics.clone(),
        routed,
        prefetch: config.prefetch.max(1),
        drain_deadline: config.drain_deadline,
        tracing: telemetry.tracing.clone(),
        activity: activity.clone(),
    });
    let flags = hookbus_runtime::health::BrokerFlags::register(&readiness);
    let routing = tokio::spawn({
        let (shutdown, amqp_url, cache) = (
            shutdown.clone(),
            config.common.amqp_url.clone(),
            cache.clone(),
        );
        async move {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = cache.loaded() => {}
            }
            consume::supervise(amqp_url, ctx, flags, shutdown).await;
        }
    });

    let admin = api::AdminState {
        logs: DeliveryLogs::new(store.pool().clone(), config.common.redis_keys()),
        store,
        cache,
        policy: config.targets.policy(),
        topology: config.common.topology(),
        amqp_url: config.common.amqp_url.clone(),
        key_overlap: config.key_rotation_overlap,
        lease: config.lease.max(Duration::from_millis(500)),
        sender: hookbus_send::Sender::new(
            config.targets.policy(),
            config.targets.egress_proxy.as_deref(),
            config.attempt_timeout,
            4096,
        ),
        portal: portal::PortalKey::new(config.console.portal_secret.as_deref()),
        tracing: telemetry.tracing.clone(),
        activity,
    };
    if config.console.portal_secret.is_none() {
        tracing::info!("HOOKBUS_PORTAL_SECRET is not set: portal links work until this router stops, on this router only");
    }
    let app = ops::routes(metrics.registry.clone(), readiness)
        .merge(api::routes(admin, token))
        .merge(console::routes(&config.console));
    tracing::info!(addr = %listener.local_addr()?, "router listening");
    ops::serve_during(listener, app, routing).await?;
    tasks.close();
    tasks.wait().await;
    telemetry.shutdown().await;
    Ok(())
}

/// Hooks known, and when the configuration was last confirmed current with Redis (a stale
/// cache shows as `time() - hookbus_hook_cache_loaded_timestamp_seconds` growing).
async fn export_cache_metrics(
    cache: HookCache,
    metrics: metrics::Metrics,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut changes = cache.subscribe();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            _ = changes.changed() => {}
        }
        metrics.hooks.set(cache.snapshot().hooks().count() as i64);
        metrics.cache_loaded.set(cache.verified_at_ms() / 1000);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("`{0}` is not a hook id")]
    HookId(String),
    #[error("no hook `{id}` under the prefix `{prefix}` (HOOKBUS_PREFIX or --prefix)")]
    NoSuchHook { id: String, prefix: String },
    #[error("hook store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Event(#[from] hookbus_contracts::catalogue::UnknownEvent),
    #[error("RabbitMQ: {0}")]
    Broker(#[from] lapin::Error),
    #[error(transparent)]
    DeadLetters(#[from] dead_letters::DeadLetterError),
}

/// Runs an operator command against the broker; prints its result on stdout.
pub async fn run_command(
    common: &CommonConfig,
    activity: &ActivityConfig,
    command: &Command,
) -> Result<(), CommandError> {
    let Command::DeadLetters(command) = command;
    let topology = common.topology();
    let (DeadLetterCommand::List { which, .. } | DeadLetterCommand::Replay { which, .. }) = command;
    let parked = match &which.hook {
        Some(hook) => dead_letters::Parked::Hook(existing_hook(common, hook).await?),
        None => dead_letters::Parked::Events,
    };
    let conn = hookbus_runtime::broker::connect(&common.amqp_url, "hookbus-router-cli").await?;
    match command {
        DeadLetterCommand::List { limit, .. } => {
            let (letters, total) = dead_letters::list(&conn, &topology, &parked, 0, *limit).await?;
            for letter in letters {
                println!(
                    "{}",
                    serde_json::to_string(&letter).expect("a dead letter serializes")
                );
            }
            eprintln!("{total} dead letters");
        }
        DeadLetterCommand::Replay {
            events,
            event_ids,
            since,
            until,
            ..
        } => {
            let events = events
                .iter()
                .map(|e| hookbus_contracts::EventName::parse(e))
                .collect::<Result<Vec<_>, _>>()?;
            let filter = dead_letters::ReplayFilter {
                events: (!events.is_empty()).then_some(events),
                event_ids: (!event_ids.is_empty()).then(|| event_ids.clone()),
                since: *since,
                until: *until,
            };
            // No spans from a one-off command: the replayed messages carry their trace on.
            let tracing = hookbus_runtime::telemetry::Tracing::off();
            let activator = match activity.idle() {
                Some(idle) => {
                    let store = store::HookStore::new(&common.redis_url, common.redis_keys())?;
                    let store = hookbus_runtime::activity::HookActivity::new(
                        store.pool().clone(),
                        common.redis_keys(),
                        idle,
                    );
                    Some(activity::Activator::new(store))
                }
                None => None,
            };
            let replayed = dead_letters::replay(
                &conn,
                &topology,
                &parked,
                &filter,
                &tracing,
                activator.as_ref(),
            )
            .await?;
            println!("{}", serde_json::json!({"replayed": replayed}));
        }
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}

/// The hook an operator named, if it exists under this prefix: a typo or the wrong prefix is
/// an error that says so, not an empty answer.
async fn existing_hook(
    common: &CommonConfig,
    id: &str,
) -> Result<hookbus_contracts::HookId, CommandError> {
    let hook =
        hookbus_contracts::HookId::parse(id).ok_or_else(|| CommandError::HookId(id.into()))?;
    let store = store::HookStore::new(&common.redis_url, common.redis_keys())?;
    match store.get(&hook).await? {
        Some(_) => Ok(hook),
        None => Err(CommandError::NoSuchHook {
            id: id.into(),
            prefix: common.prefix.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn an_operator_command_takes_the_shared_settings_anywhere_on_the_line() {
        let lines: [&[&str]; 3] = [
            &[
                "router",
                "--prefix",
                "p1",
                "dead-letters",
                "list",
                "--hook",
                "h",
            ],
            &[
                "router",
                "dead-letters",
                "--prefix",
                "p1",
                "list",
                "--hook",
                "h",
            ],
            &[
                "router",
                "dead-letters",
                "list",
                "--hook",
                "h",
                "--prefix",
                "p1",
            ],
        ];
        for line in lines {
            let config = Config::try_parse_args(line).unwrap();
            assert_eq!(config.common.prefix, "p1", "{line:?}");
            assert!(matches!(
                config.command,
                Some(Command::DeadLetters(DeadLetterCommand::List { .. }))
            ));
        }
    }

    #[test]
    fn every_dead_letter_flag_has_help() {
        let mut router = Config::command();
        let dead_letters = router.find_subcommand_mut("dead-letters").unwrap();
        for command in dead_letters.get_subcommands() {
            for arg in command.get_arguments() {
                assert!(
                    arg.get_help().is_some(),
                    "`{} --{}` has no help",
                    command.get_name(),
                    arg.get_id()
                );
            }
        }
    }
}
