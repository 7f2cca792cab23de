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
