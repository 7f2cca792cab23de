//! Test helpers shared by every crate's integration tests. Tests talk to the real services;
//! these helpers only give each test its own namespace and a way to observe and break things.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

pub mod amqp;
pub mod db;
pub mod proxy;
pub mod stores;
pub mod vhost;

use std::path::PathBuf;

/// `WMS_TEST_AMQP_URL` or the local broker.
pub fn amqp_url() -> String {
    std::env::var("WMS_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// `WMS_TEST_DATABASE_URL` (a server URL without database) or the local server.
pub fn database_server_url() -> String {
    std::env::var("WMS_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh AMQP namespace, unique per test.
pub fn random_namespace() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Path of a fixture under the workspace's `fixtures/`.
pub fn fixture_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(relative)
}

/// A fixture's bytes, exactly as stored.
pub fn fixture(relative: &str) -> Vec<u8> {
    let path = fixture_path(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fixture compacted to one line, as Webflow sends JSON.
pub fn compact_fixture(relative: &str) -> Vec<u8> {
    let value: serde_json::Value = serde_json::from_slice(&fixture(relative)).unwrap();
    serde_json::to_vec(&value).unwrap()
}

/// Deletes a test's AMQP namespace when dropped, also when the test panics (a panic skips any
/// async teardown): leftover quorum queues pile up and slow the broker down for every later
/// test. Uses its own connection, since the test's may be cut.
pub struct LeakGuard {
    pub topology: platform::amqp::Topology,
}

impl Drop for LeakGuard {
    fn drop(&mut self) {
        let topology = self.topology.clone();
        block_on_fresh_runtime(async move {
            if let Ok(connection) =
                lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default()).await
                && let Ok(channel) = connection.create_channel().await
            {
                let _ = topology.delete(&channel).await;
            }
        });
    }
}

/// Runs cleanup from a `Drop`, which may run while the test's runtime is unwinding: on a fresh
/// thread with its own runtime, bounded to 20 s.
pub(crate) fn block_on_fresh_runtime(cleanup: impl std::future::Future<Output = ()> + Send + 'static) {
    let worker = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        runtime.block_on(async move {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(20), cleanup).await;
        });
    });
    let _ = worker.join();
}
