//! Who may do what on the broker: the RabbitMQ permissions (configure, write, read regexes on
//! a vhost) each user of the system needs, derived from the [`Topology`]. The one source of
//! truth that `wmsctl amqp permissions` prints and deploy/rabbitmq/users.sh applies; the
//! end-to-end test runs the pipeline under exactly these users (tests/pipeline/least_privilege.rs).
//!
//! RabbitMQ's checks (verified on 3.10.8 by that test and by hand):
//! - declaring an exchange or a queue needs *configure* on it; a queue declared with a
//!   dead-letter exchange also needs *read* on the queue and *write* on that exchange;
//!   binding needs *write* on the queue and *read* on the exchange: all of that is
//!   [`Role::Topology`]'s alone;
//! - a *passive* declare (does it exist, how many messages) needs no permission at all: that
//!   is how the services check the topology ([`Topology::verify`]), how the warehouse and
//!   `wmsctl dlq list` count messages, and how KEDA reads queue lengths;
//! - publishing needs *write* on the exchange (the default exchange is `amq.default`, which no
//!   role gets); consuming, `basic.get` and purging need *read* on the queue;
//! - what the broker itself moves (a quorum queue's at-least-once dead-lettering to
//!   `<ns>.dead`, a retry tier's expired messages to `<ns>.requeue`) needs no user's permission.

use super::topology::Topology;
use serde::Serialize;

/// Every RabbitMQ user of an install, one per process kind (plus the privileged topology
/// step, the operator's `wmsctl` and KEDA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// `wmsctl amqp declare` (the migrate Job): declares and binds the namespace's exchanges
    /// and queues.
    Topology,
    /// Publishes webhooks to `<ns>.events`; nothing else.
    Ingress,
    Enrich,
    Reserve,
    Ship,
    NotifyWebflow,
    /// Publishes its events (outbox); the console lists, replays and purges dead letters.
    Warehouse,
    /// Publishes re-injected webhooks and repair events (outbox).
    Reconcile,
    /// `wmsctl`: dead letters (list, show, replay, purge) and `reconcile --once`.
    Operator,
    /// KEDA's RabbitMQ scaler: queue lengths by passive declares only.
    Keda,
}

impl Role {
    pub const ALL: [Role; 10] = [
        Role::Topology,
        Role::Ingress,
        Role::Enrich,
        Role::Reserve,
        Role::Ship,
        Role::NotifyWebflow,
        Role::Warehouse,
        Role::Reconcile,
        Role::Operator,
        Role::Keda,
    ];

    /// The role's name: the service's, as in `<name>-amqp-url` and the user `wms-<name>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Topology => "topology",
            Role::Ingress => "ingress",
            Role::Enrich => super::topology::consumer::ENRICH,
            Role::Reserve => super::topology::consumer::RESERVE,
            Role::Ship => super::topology::consumer::SHIP,
            Role::NotifyWebflow => super::topology::consumer::NOTIFY_WEBFLOW,
            Role::Warehouse => "warehouse",
            Role::Reconcile => "reconcile",
            Role::Operator => "operator",
            Role::Keda => "keda",
        }
    }

    /// The consumer whose work queue this role reads, for the worker services.
    fn consumer(self) -> Option<&'static str> {
        match self {
            Role::Enrich | Role::Reserve | Role::Ship | Role::NotifyWebflow => Some(self.as_str()),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three regexes of `rabbitmqctl set_permissions` (on resource names of one vhost).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Permissions {
    pub role: Role,
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// Matches no resource name (RabbitMQ's idiom for "none").
pub const NOTHING: &str = "^$";

impl Topology {
    /// What `role` may configure, write and read: exactly what its process does, nothing else.
    pub fn permissions(&self, role: Role) -> Permissions {
        let ns = escape(self.namespace());
        let any_of = |names: &[String]| -> String {
            if names.is_empty() {
                NOTHING.to_owned()
            } else if let [name] = names {
                format!("^{ns}\\.{}$", escape(name))
            } else {
                let names: Vec<String> = names.iter().map(|n| escape(n)).collect();
                format!("^{ns}\\.({})$", names.join("|"))
            }
        };
        let exchanges = |names: &[&str]| any_of(&names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>());
        let dead_queues: Vec<String> = self.consumers().iter().map(|c| format!("{}.dead", c.name)).collect();
        let (configure, write, read) = match role {
            Role::Topology => {
                let all = format!("^{ns}\\.");
                (all.clone(), all.clone(), all)
            }
            Role::Ingress | Role::Reconcile => (NOTHING.to_owned(), exchanges(&["events"]), NOTHING.to_owned()),
            // Events through the outbox, transient failures to a retry tier, permanent ones to
            // the dead exchange; reads its own work queue only.
            Role::Enrich | Role::Reserve | Role::Ship | Role::NotifyWebflow => (
                NOTHING.to_owned(),
                exchanges(&["events", "retry", "dead"]),
                any_of(&[role.consumer().unwrap_or_default().to_owned()]),
            ),
            // Events (outbox, `reconcile --once`); dead letters replayed through the requeue
            // exchange, read (shown, replayed) and purged.
            Role::Warehouse | Role::Operator => (
                NOTHING.to_owned(),
                exchanges(&["events", "requeue"]),
                any_of(&dead_queues),
            ),
            Role::Keda => (NOTHING.to_owned(), NOTHING.to_owned(), NOTHING.to_owned()),
        };
        Permissions {
            role,
            configure,
            write,
            read,
        }
    }

    /// [`Self::permissions`] of every role.
    pub fn all_permissions(&self) -> Vec<Permissions> {
        Role::ALL.iter().map(|role| self.permissions(*role)).collect()
    }
}

/// `name` as a regex matching exactly it (names are `a-z0-9-_.`: only the dot is special).
fn escape(name: &str) -> String {
    name.replace('.', "\\.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        Topology::new("wms", vec![1_000], 10)
    }

    #[test]
    fn the_ingress_writes_its_exchange_only() {
        let p = topology().permissions(Role::Ingress);
        assert_eq!(
            (p.configure.as_str(), p.write.as_str(), p.read.as_str()),
            ("^$", "^wms\\.events$", "^$")
        );
    }

    #[test]
    fn a_worker_reads_its_own_queue_only() {
        let p = topology().permissions(Role::NotifyWebflow);
        assert_eq!(p.configure, "^$");
        assert_eq!(p.write, "^wms\\.(events|retry|dead)$");
        assert_eq!(p.read, "^wms\\.notify-webflow$");
    }

    #[test]
    fn the_warehouse_reads_dead_letters_only() {
        let p = topology().permissions(Role::Warehouse);
        assert_eq!(p.write, "^wms\\.(events|requeue)$");
        assert_eq!(
            p.read,
            "^wms\\.(enrich\\.dead|reserve\\.dead|ship\\.dead|notify-webflow\\.dead)$"
        );
    }

    #[test]
    fn only_the_topology_role_configures() {
        for p in topology().all_permissions() {
            assert_eq!(p.configure == "^$", p.role != Role::Topology, "{p:?}");
        }
        assert_eq!(topology().permissions(Role::Topology).read, "^wms\\.");
    }
}
