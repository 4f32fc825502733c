//! Readiness: the conditions a process registers (connected to RabbitMQ, to Redis,
//! consuming...) and whether they all hold.
//!
//! Apart from the HTTP server that serves `/readyz` (`ops`), so that the SDK, which has no
//! server, reports its link's state with the same [`Flag`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One readiness condition (connected to RabbitMQ, to Redis, consuming...).
#[derive(Clone, Default)]
pub struct Flag(Arc<AtomicBool>);

impl Flag {
    pub fn set(&self, up: bool) {
        self.0.store(up, Ordering::Relaxed);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The two conditions of a process that consumes from RabbitMQ.
#[derive(Clone, Default)]
pub struct BrokerFlags {
    pub connected: Flag,
    pub consuming: Flag,
}

impl BrokerFlags {
    pub fn register(readiness: &Readiness) -> BrokerFlags {
        BrokerFlags {
            connected: readiness.flag("rabbitmq"),
            consuming: readiness.flag("consuming"),
        }
    }

    pub fn down(&self) {
        self.connected.set(false);
        self.consuming.set(false);
    }
}

#[derive(Clone, Default)]
pub struct Readiness {
    flags: Arc<Mutex<Vec<(&'static str, Flag)>>>,
}

impl Readiness {
    /// Registers a condition, down until set.
    pub fn flag(&self, name: &'static str) -> Flag {
        let flag = Flag::default();
        self.flags
            .lock()
            .expect("readiness lock")
            .push((name, flag.clone()));
        flag
    }

    pub fn state(&self) -> Vec<(&'static str, bool)> {
        self.flags
            .lock()
            .expect("readiness lock")
            .iter()
            .map(|(n, f)| (*n, f.get()))
            .collect()
    }

    pub fn is_ready(&self) -> bool {
        self.state().iter().all(|(_, up)| *up)
    }
}
