//! `wmsctl stores add|list|set|remove` against a running warehouse (real PostgreSQL and
//! RabbitMQ) and the Webflow simulator: the tokens come from files, never from arguments.
//! Here, not in wmsctl's own tests: only the test crates may depend on a service (the
//! warehouse), and the tool talks to it over HTTP only.

use secrecy::SecretString;
use service_base::BaseSettings;
use std::time::Duration;
use test_support::db::TestDatabase;
use tokio_util::sync::CancellationToken;
use webflow_sim::state::SimSite;
use webflow_sim::{SimConfig, Simulator};

const ADMIN_TOKEN: &str = "wmsctl-admin-token";
const SITE: &str = "site-cli";
const SITE_TOKEN: &str = "site-cli-token";

struct Stack {
    url: String,
    sim: Simulator,
    db: TestDatabase,
    dir: tempfile::TempDir,
    shutdown: CancellationToken,
    _leak_guard: test_support::LeakGuard,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn stack() -> Stack {
    platform::telemetry::init_for_tests();
    platform::install_crypto_provider();
    let shutdown = CancellationToken::new();
    let sim = Simulator::start(
        SimConfig {
            bind: "127.0.0.1:0".into(),
            extra_sites: vec![SimSite {
                site_id: SITE.into(),
                token: SITE_TOKEN.into(),
                webhook_secret: "unused".into(),
                webhook_url: None,
                rate_limit_per_minute: None,
            }],
            ..SimConfig::default()
        },
        shutdown.clone(),
    )
    .unwrap();
    let db = TestDatabase::create().await;
    let mut base = BaseSettings::default();
    base.amqp.url = SecretString::from(test_support::amqp_url());
    base.amqp.namespace = test_support::random_namespace();
    base.database.url = SecretString::from(db.url.clone());
    base.database.pool_size = 2;
    base.health.bind = "127.0.0.1:0".into();
    let mut settings = warehouse::Settings {
        base,
        ..Default::default()
    };
    settings.warehouse.bind = "127.0.0.1:0".into();
    settings.warehouse.api_tokens = vec![SecretString::from(ADMIN_TOKEN)];
    settings.warehouse.public_ingress_url = Some("https://bridge.example.com".into());
    settings.webflow.api_base_url = format!("{}/v2", sim.base_url);
    settings.webflow.allow_insecure_http = true;
    let leak_guard = test_support::LeakGuard {
        topology: platform::amqp::Topology::from_settings(&settings.base.amqp),
    };
    let app = warehouse::build(settings, shutdown.clone()).await.unwrap();
    app.amqp().wait_ready(Duration::from_secs(20)).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin"), format!("{ADMIN_TOKEN}\n")).unwrap();
    std::fs::write(dir.path().join("site"), SITE_TOKEN).unwrap();
    Stack {
        url,
        sim,
        db,
        dir,
        shutdown,
        _leak_guard: leak_guard,
    }
}

impl Stack {
    /// Runs `wmsctl --json stores <args>` (off the runtime's thread: the warehouse runs on it).
    async fn wmsctl(&self, args: &[&str]) -> (i32, String, String) {
        let mut command = std::process::Command::new(e2e::stack::bin_dir().join("wmsctl"));
        command
            .arg("--json")
            .arg("stores")
            .args(["--url", &self.url])
            .arg("--token-file")
            .arg(self.dir.path().join("admin"))
            .args(args)
            .env_remove("WMS_WAREHOUSE_TOKEN")
            .env_remove("WEBFLOW_API_TOKEN");
        let output = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn site_token_file(&self) -> String {
        self.dir.path().join("site").display().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_are_added_listed_changed_and_removed_with_wmsctl() {
    let stack = stack().await;
    let token_file = stack.site_token_file();

    let (code, out, err) = stack
        .wmsctl(&[
            "add",
            "shop-cli",
            "--site-id",
            SITE,
            "--api-token-file",
            &token_file,
            "--register-webhooks",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["name"], "shop-cli");
    assert!(!out.contains(SITE_TOKEN) && !err.contains(SITE_TOKEN));
    assert_eq!(stack.sim.state.webhooks_of(SITE).len(), 3);

    let (code, out, _) = stack.wmsctl(&["list"]).await;
    assert_eq!(code, 0);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(listed.as_array().unwrap().iter().any(|s| s["name"] == "shop-cli"));

    let (code, out, err) = stack
        .wmsctl(&["set", "shop-cli", "--rate-limit-per-minute", "30"])
        .await;
    assert_eq!(code, 0, "{err}");
    let changed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(changed["rate_limit_per_minute"], 30);

    // The API's errors come through as one line with their code.
    let (code, _, err) = stack
        .wmsctl(&[
            "add",
            "shop-cli",
            "--site-id",
            "elsewhere",
            "--api-token-file",
            &token_file,
        ])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("duplicate_name") && err.contains("HTTP 409"), "{err}");
    let (code, _, err) = stack.wmsctl(&["set", "shop-cli"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("nothing to change"), "{err}");

    let (code, _, err) = stack.wmsctl(&["remove", "shop-cli", "--yes"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(stack.sim.state.webhooks_of(SITE).is_empty());
    let removed: i64 = stack
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM stores WHERE name = 'shop-cli' AND removed_at IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(removed, 1);
    let (code, _, err) = stack.wmsctl(&["remove", "shop-cli", "--yes"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("HTTP 404"), "{err}");
}
