//! Several broker addresses (the nodes of one RabbitMQ cluster) and the order the connection
//! tries them in.
//!
//! Any node of a cluster serves every queue: a client connected to one node publishes to and
//! consumes from queues whose leader is on another. So failing over is only a matter of
//! connecting to a node that is up; the topology is declared again there (idempotently).

use secrecy::{ExposeSecret, SecretString};

/// Splits `amqp.url` (one URL, or several separated by commas) into its addresses, trimmed,
/// empty ones dropped. A comma cannot occur in an AMQP URL otherwise (it would be
/// percent-encoded in a password), so the split is unambiguous.
pub fn split(url: &SecretString) -> Vec<SecretString> {
    url.expose_secret()
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(SecretString::from)
        .collect()
}

/// `host:port` of an AMQP URL, without user, password or vhost: safe to log.
pub fn endpoint(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host.is_empty() {
        "localhost".into()
    } else {
        host.to_owned()
    }
}

/// The address to try next. It stays on an address while connections to it succeed and moves
/// to the next one (wrapping around) whenever a connection attempt fails or an established
/// connection is lost: a node that just went away is the last one to try again.
#[derive(Debug, Clone)]
pub struct Rotation {
    len: usize,
    current: usize,
    /// Failed attempts since the last success, so the caller can tell a full round.
    failures: usize,
}

impl Rotation {
    pub fn new(len: usize) -> Self {
        Self {
            len: len.max(1),
            current: 0,
            failures: 0,
        }
    }

    /// Index of the address to try now.
    pub fn current(&self) -> usize {
        self.current
    }

    /// A connection to the current address succeeded.
    pub fn connected(&mut self) {
        self.failures = 0;
    }

    /// Connecting to the current address failed: move on to the next one.
    pub fn failed(&mut self) {
        self.failures += 1;
        self.advance();
    }

    /// The connection to the current address was lost: move on to the next one.
    pub fn lost(&mut self) {
        self.failures = 0;
        self.advance();
    }

    /// True when every address failed since the last success (or start).
    pub fn round_failed(&self) -> bool {
        self.failures >= self.len
    }

    fn advance(&mut self) {
        self.current = (self.current + 1) % self.len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_one_or_several_urls() {
        let one = split(&SecretString::from("amqp://guest:guest@127.0.0.1:5672/%2f"));
        assert_eq!(one.len(), 1);
        let several = split(&SecretString::from(" amqp://a:1/%2f ,amqp://b:2/%2f,, amqp://c:3/%2f "));
        let urls: Vec<&str> = several.iter().map(ExposeSecret::expose_secret).collect();
        assert_eq!(urls, ["amqp://a:1/%2f", "amqp://b:2/%2f", "amqp://c:3/%2f"]);
        assert!(split(&SecretString::from("")).is_empty());
    }

    #[test]
    fn endpoints_hide_credentials() {
        assert_eq!(
            endpoint("amqp://user:s3cret@rabbit-0.rabbit:5672/%2f"),
            "rabbit-0.rabbit:5672"
        );
        assert_eq!(endpoint("amqps://h:5671?heartbeat=10"), "h:5671");
        assert_eq!(endpoint("amqp://u:p@[::1]:5672/v"), "[::1]:5672");
        assert_eq!(endpoint("amqp://"), "localhost");
    }

    #[test]
    fn failures_move_to_the_next_address_and_wrap_around() {
        let mut rotation = Rotation::new(3);
        assert_eq!(rotation.current(), 0);
        rotation.failed();
        assert_eq!(rotation.current(), 1);
        assert!(!rotation.round_failed());
        rotation.failed();
        assert_eq!(rotation.current(), 2);
        rotation.failed();
        assert_eq!(rotation.current(), 0, "wraps around");
        assert!(rotation.round_failed(), "every address failed once");
        rotation.connected();
        assert!(!rotation.round_failed());
        assert_eq!(rotation.current(), 0, "stays where it connected");
    }

    #[test]
    fn a_lost_connection_tries_another_node_first() {
        let mut rotation = Rotation::new(3);
        rotation.failed();
        rotation.connected();
        assert_eq!(rotation.current(), 1);
        rotation.lost();
        assert_eq!(rotation.current(), 2, "the node that went away is tried last");
        assert!(!rotation.round_failed());
        rotation.lost();
        rotation.lost();
        assert_eq!(rotation.current(), 1);
    }

    #[test]
    fn one_address_is_always_the_current_one() {
        let mut rotation = Rotation::new(1);
        rotation.failed();
        assert_eq!(rotation.current(), 0);
        assert!(rotation.round_failed());
        rotation.lost();
        assert_eq!(rotation.current(), 0);
        assert_eq!(Rotation::new(0).current(), 0, "never empty");
    }
}
