//! A RabbitMQ vhost and users of a test's own, for permission tests: created with
//! `rabbitmqctl` (`WMS_TEST_RABBITMQCTL` names the command, default `rabbitmqctl`; e.g.
//! `docker compose exec -T rabbitmq rabbitmqctl`), deleted with every user when dropped, also
//! when the test panics. Names are unique per test, so tests run in parallel.

use std::process::{Command, Stdio};
use std::sync::Mutex;

/// A vhost `wms-t<random>`; `guest` may do anything on it (the test observes through it).
pub struct TestVhost {
    name: String,
    users: Mutex<Vec<String>>,
}

impl TestVhost {
    pub fn create() -> Self {
        let name = format!("wms-{}", crate::random_namespace());
        rabbitmqctl(&["add_vhost", &name]);
        let vhost = Self {
            name,
            users: Mutex::new(Vec::new()),
        };
        rabbitmqctl(&["set_permissions", "-p", &vhost.name, "guest", ".*", ".*", ".*"]);
        vhost
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `guest` on this vhost: everything allowed.
    pub fn guest_url(&self) -> String {
        self.url("guest", "guest")
    }

    /// Adds the user `<vhost>-<role>` with these permissions on the vhost only; returns its URL.
    pub fn add_user(&self, role: &str, configure: &str, write: &str, read: &str) -> String {
        let user = format!("{}-{role}", self.name);
        let password = uuid::Uuid::new_v4().simple().to_string();
        // Recorded first: a failure below still deletes it.
        self.users.lock().unwrap().push(user.clone());
        rabbitmqctl(&["add_user", &user, &password]);
        rabbitmqctl(&["set_permissions", "-p", &self.name, &user, configure, write, read]);
        self.url(&user, &password)
    }

    fn url(&self, user: &str, password: &str) -> String {
        // The test broker's host and port, from `WMS_TEST_AMQP_URL` or the default.
        let base = crate::amqp_url();
        let (scheme, rest) = base.split_once("://").unwrap_or(("amqp", base.as_str()));
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let host = host.split_once('/').map_or(host, |(host, _)| host);
        format!("{scheme}://{user}:{password}@{host}/{}", self.name)
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        // Deleting the vhost deletes its queues and exchanges.
        let _ = run(&["delete_vhost", &self.name]);
        let users = std::mem::take(&mut *self.users.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for user in users {
            let _ = run(&["delete_user", &user]);
        }
    }
}

fn rabbitmqctl(args: &[&str]) {
    if let Err(error) = run(args) {
        panic!("{error}");
    }
}

fn run(args: &[&str]) -> Result<(), String> {
    let configured = std::env::var("WMS_TEST_RABBITMQCTL").unwrap_or_else(|_| "rabbitmqctl".into());
    let mut words = configured.split_whitespace();
    let program = words.next().ok_or("WMS_TEST_RABBITMQCTL is empty")?;
    let output = Command::new(program)
        .args(words)
        .arg("-q")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run `{configured}` ({error}): set WMS_TEST_RABBITMQCTL"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{configured} {}` failed: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
