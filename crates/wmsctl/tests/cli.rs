//! The `wmsctl` binary: clear errors and non-zero exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::process::Command;

fn wmsctl(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wmsctl"));
    // The local broker's guest user over amqp://: the local profile.
    command.args(args).env_remove("WMS_CONFIG").env("WMS__PROFILE", "local");
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn help_lists_the_commands() {
    let (code, out, _) = wmsctl(&["--help"], &[]);
    assert_eq!(code, 0);
    for command in [
        "dlq",
        "order",
        "migrate",
        "reconcile",
        "sites",
        "webhooks",
        "merchants",
        "stores",
    ] {
        assert!(out.contains(command), "{command} missing:\n{out}");
    }
}

#[test]
fn replay_needs_a_selection() {
    let (code, _, err) = wmsctl(&["dlq", "replay", "wms.enrich.dead"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("--order <ORDER_ID> or --all"), "{err}");
}

#[test]
fn an_unreachable_broker_is_a_clear_error() {
    let (code, _, err) = wmsctl(
        &["dlq", "list"],
        &[("WMS__AMQP__URL", "amqp://guest:guest@127.0.0.1:1/%2f")],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach RabbitMQ"), "{err}");
}

#[test]
fn bad_configuration_names_the_key() {
    let (code, _, err) = wmsctl(&["dlq", "list"], &[("WMS__AMQP__NAMESPACE", "Not Valid")]);
    assert_eq!(code, 1);
    assert!(err.contains("amqp.namespace"), "{err}");
}

#[test]
fn purge_asks_first() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wmsctl"))
        .args(["dlq", "purge", "wms.enrich.dead"])
        .env("WMS__PROFILE", "local")
        .env("WMS__AMQP__NAMESPACE", "wmsctl-cli-test")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"n\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    // The queue name is checked before asking; either way nothing was purged.
    assert!(
        err.contains("not purged") || err.contains("not a dead-letter queue"),
        "{err}"
    );
}

/// `wmsctl merchants add` then `list`, on a fresh database; a taken or bad name fails clearly.
#[tokio::test]
async fn merchants_are_added_and_listed() {
    let db = test_support::db::TestDatabase::create().await;
    let env = [("WMS__DATABASE__URL", db.url.as_str())];
    let (code, out, err) = wmsctl(&["merchants", "add", "acme"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created merchant acme"), "{out}");
    let (code, out, err) = wmsctl(&["--json", "merchants", "list"], &env);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme", "default"]);
    let (code, _, err) = wmsctl(&["merchants", "add", "acme"], &env);
    assert_eq!(code, 1);
    assert!(err.contains("a merchant named `acme` exists already"), "{err}");
    let (code, _, err) = wmsctl(&["merchants", "add", "Not Valid"], &env);
    assert_eq!(code, 1);
    assert!(err.contains("invalid merchant name"), "{err}");
}

/// A key rotation: with the new key first in the key file and the old one after it,
/// `wmsctl secrets reseal` seals every store token and webhook secret with the new key (then
/// the old line can go); run again, it has nothing to do; a value no key opens is named and
/// fails the command.
#[tokio::test]
async fn a_key_rotation_reseals_every_sealed_value_with_the_new_key() {
    use secrecy::ExposeSecret;
    use secrets_at_rest::{Keyring, SecretsSettings};
    let db = test_support::db::TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let line = |id: &str| Keyring::new_key_line(id).unwrap().expose_secret().to_owned();
    let keyring_of = |name: &str, lines: &[&str]| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join("\n")).unwrap();
        let keyring = Keyring::load(&SecretsSettings {
            key_file: Some(path.clone()),
        })
        .unwrap();
        (path, keyring)
    };
    let (old, new) = (line("2026-11"), line("2026-12"));
    let (_, old_ring) = keyring_of("old", &[&old]);
    let store = test_support::stores::insert_api_store(&db.pool, &old_ring, "north", "site-n", "tok-n", "sec-n").await;

    let (rotated, _) = keyring_of("rotated", &[&new, &old]);
    let env = [
        ("WMS__DATABASE__URL", db.url.as_str()),
        ("WMS__SECRETS__KEY_FILE", rotated.to_str().unwrap()),
    ];
    let (code, out, err) = wmsctl(&["--json", "secrets", "reseal"], &env);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&report["key_id"], &report["api_tokens"], &report["webhook_secrets"]),
        (&"2026-12".into(), &1.into(), &1.into()),
        "{report}"
    );

    // The new key alone opens both: the old line can go.
    let (_, new_only) = keyring_of("new-only", &[&new]);
    let client = db.client().await;
    let token: String = client
        .query_one("SELECT api_token_sealed FROM stores WHERE id = $1", &[&store])
        .await
        .unwrap()
        .get(0);
    assert!(token.starts_with("v1:2026-12:"), "{token}");
    assert_eq!(
        new_only
            .open(&token, &warehouse_db::stores::api_token_context(store))
            .unwrap()
            .expose_secret(),
        "tok-n"
    );
    let row = client
        .query_one(
            "SELECT id, secret_sealed FROM store_webhooks WHERE store_id = $1",
            &[&store],
        )
        .await
        .unwrap();
    let (hook, secret): (i64, String) = (row.get(0), row.get(1));
    assert_eq!(
        new_only
            .open(&secret, &warehouse_db::stores::webhook_secret_context(hook))
            .unwrap()
            .expose_secret(),
        "sec-n"
    );

    let (code, out, err) = wmsctl(&["secrets", "reseal"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("resealed 0 API token(s) and 0 webhook secret(s) with key 2026-12"),
        "{out}"
    );

    // A store sealed with a key the file no longer holds: named, left alone, the command fails.
    let (_, lost_ring) = keyring_of("lost", &[&line("2025-01")]);
    let lost = test_support::stores::insert_api_store(&db.pool, &lost_ring, "south", "site-s", "tok-s", "sec-s").await;
    let (code, _, err) = wmsctl(&["secrets", "reseal"], &env);
    assert_eq!(code, 1);
    assert!(
        err.contains("2 value(s) open with no key") && err.contains(&format!("stores.api_token:{lost}")),
        "{err}"
    );
    // Once that store is removed, its values are history: a warning, not a failure.
    test_support::stores::remove_store(&db.pool, "south").await;
    let (code, _, err) = wmsctl(&["secrets", "reseal"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: 2 value(s) of removed stores or webhooks"),
        "{err}"
    );

    // Production never falls back to the development key.
    let (code, _, err) = wmsctl(
        &["secrets", "reseal"],
        &[
            ("WMS__PROFILE", "production"),
            // Transport production accepts: the key file is what is missing.
            ("WMS__AMQP__URL", "amqps://svc:pw@rabbitmq:5671/%2f"),
            ("WMS__DATABASE__URL", "postgres://svc:pw@db/wms?sslmode=verify-full"),
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("secrets.key_file"), "{err}");
}

/// `wmsctl stores` sends nothing without an operator token (its other commands: the e2e tests).
#[test]
fn stores_without_an_operator_token_sends_nothing() {
    let output = Command::new(env!("CARGO_BIN_EXE_wmsctl"))
        .args(["stores", "--url", "http://127.0.0.1:1", "list"])
        .env_remove("WMS_WAREHOUSE_TOKEN")
        .env_remove("WMS_WAREHOUSE_TOKEN_FILE")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("set WMS_WAREHOUSE_TOKEN"));
}
