//! The three binaries as their clap definitions describe them (the environment variables
//! each reads, with defaults, and its listen address), so that every deployment file is
//! checked against what the code accepts rather than against a list kept by hand.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use clap::CommandFactory;
use hookbus_runtime::config::parse_duration;

pub(super) const DRAIN_DEADLINE_ENV: &str = "HOOKBUS_DRAIN_DEADLINE";
/// Read by `hookbus_runtime::ops::init_tracing` in every process, outside clap.
pub(super) const TRACING_ENV: &[&str] = &["RUST_LOG", "HOOKBUS_LOG_FORMAT"];

pub(super) struct Binary {
    /// The binary's name, which is also its compose service and its command in containers.
    pub(super) name: String,
    /// Every environment variable it reads, with its default.
    pub(super) env: BTreeMap<String, Option<String>>,
    /// The variable of its listen address, and the address by default.
    pub(super) listen_env: String,
    pub(super) default_listen: SocketAddr,
}

impl Binary {
    pub(super) fn from_clap(command: clap::Command) -> Binary {
        let mut env = BTreeMap::new();
        let mut listen = None;
        for arg in command.get_arguments() {
            let Some(var) = arg.get_env() else { continue };
            let var = var.to_string_lossy().into_owned();
            let default = arg
                .get_default_values()
                .first()
                .map(|v| v.to_string_lossy().into_owned());
            if arg.get_id().as_str() == "listen" {
                let addr = default.as_deref().expect("a default listen address");
                listen = Some((var.clone(), addr.parse().expect("a socket address")));
            }
            env.insert(var, default);
        }
        for var in TRACING_ENV {
            env.insert((*var).to_owned(), None);
        }
        let (listen_env, default_listen) = listen.expect("a `listen` argument");
        Binary {
            name: command.get_name().to_owned(),
            env,
            listen_env,
            default_listen,
        }
    }

    pub(super) fn port(&self) -> u16 {
        self.default_listen.port()
    }

    pub(super) fn job(&self) -> String {
        format!("hookbus-{}", self.name)
    }

    /// Variables without which the process is useless in a container: its broker and store
    /// (the defaults point at 127.0.0.1), its listen address (likewise), and the API token
    /// it refuses to start without (`RunError::NoToken` of the producer and the router).
    pub(super) fn required_env(&self) -> Vec<String> {
        let mut vars = vec![
            "HOOKBUS_AMQP_URL".to_owned(),
            "HOOKBUS_REDIS_URL".to_owned(),
            self.listen_env.clone(),
        ];
        match self.name.as_str() {
            "producer" => vars.push("HOOKBUS_INGEST_TOKEN".into()),
            "router" => vars.push("HOOKBUS_ADMIN_TOKEN".into()),
            _ => {}
        }
        vars
    }

    /// The value a variable takes: as configured, else the binary's default.
    pub(super) fn value_of(
        &self,
        configured: &BTreeMap<String, String>,
        var: &str,
    ) -> Option<String> {
        configured
            .get(var)
            .cloned()
            .or_else(|| self.env.get(var).cloned().flatten())
    }

    /// Problems with one process's environment as a deployment sets it.
    pub(super) fn check_env(
        &self,
        place: &str,
        configured: &BTreeMap<String, String>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for var in configured.keys() {
            if !self.env.contains_key(var) {
                problems.push(format!(
                    "{place}: `{}` does not read {var} (it reads {:?})",
                    self.name,
                    self.env.keys().collect::<Vec<_>>()
                ));
            }
        }
        for var in self.required_env() {
            if !configured.contains_key(&var) {
                problems.push(format!("{place}: {var} is not set for `{}`", self.name));
            }
        }
        for var in ["HOOKBUS_AMQP_URL", "HOOKBUS_REDIS_URL"] {
            let value = configured.get(var).map(String::as_str).unwrap_or("");
            if value.contains("127.0.0.1") || value.contains("localhost") {
                problems.push(format!(
                    "{place}: {var} of `{}` points at the container itself: {value}",
                    self.name
                ));
            }
        }
        match configured
            .get(&self.listen_env)
            .map(|v| v.parse::<SocketAddr>())
        {
            Some(Ok(addr)) if addr.ip().is_unspecified() && addr.port() == self.port() => {}
            Some(_) => problems.push(format!(
                "{place}: {} of `{}` must be 0.0.0.0:{} (all interfaces, the usual port), is {:?}",
                self.listen_env,
                self.name,
                self.port(),
                configured.get(&self.listen_env)
            )),
            None => {}
        }
        problems
    }
}

pub(super) fn binaries() -> Vec<Binary> {
    vec![
        Binary::from_clap(hookbus_producer::Config::command()),
        Binary::from_clap(hookbus_router::Config::command()),
        Binary::from_clap(hookbus_deliverer::Config::command()),
    ]
}

pub(super) fn binary<'a>(bins: &'a [Binary], name: &str) -> &'a Binary {
    bins.iter()
        .find(|b| b.name == name)
        .expect("a hookbus binary")
}

/// A process's drain deadline as configured (or by default), which its termination grace
/// must outlast. A process without one of its own (the producer answers the requests under
/// way) is held to the pipeline's, the deliverers' `deliverers`.
pub(super) fn drain_deadline(
    bin: &Binary,
    configured: &BTreeMap<String, String>,
    deliverers: Duration,
) -> Duration {
    assert!(
        bin.name != "deliverer" || bin.env.contains_key(DRAIN_DEADLINE_ENV),
        "the deliverer does not read {DRAIN_DEADLINE_ENV}"
    );
    match bin.value_of(configured, DRAIN_DEADLINE_ENV) {
        Some(value) => parse_duration(&value).expect("a duration"),
        None => deliverers,
    }
}
