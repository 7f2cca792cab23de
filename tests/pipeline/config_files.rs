//! The shipped configuration files load and validate for every service that uses them; keys no
//! service knows are refused by name; the production profile refuses local-only settings.

use platform::service::ServiceSettings;
use platform::settings::{KNOWN_TOP_LEVEL_KEYS, SettingsError, Validate, load_from, reads_section};
use serde::de::DeserializeOwned;
use std::io::Write;
use std::path::PathBuf;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

type Env = Vec<(String, String)>;

fn load<T: DeserializeOwned + Validate>(file: &str, env: &Env) -> T {
    load_from(Some(path(file)), env.clone()).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn error<T: DeserializeOwned + Validate + std::fmt::Debug>(file: Option<PathBuf>, env: &Env) -> String {
    load_from::<T, _>(file, env.clone()).unwrap_err().to_string()
}

/// Every service's settings type, by the service's name.
macro_rules! for_every_service {
    ($check:ident) => {
        $check::<ingress::Settings>("ingress");
        $check::<enrich::Settings>("enrich");
        $check::<service_base::BaseSettings>("reserve");
        $check::<ship::Settings>("ship");
        $check::<notify_webflow::Settings>("notify-webflow");
        $check::<warehouse::Settings>("warehouse");
        $check::<reconcile::Settings>("reconcile");
        $check::<retention::Settings>("prune");
    };
}

/// The environment docker-compose.yml gives the services (`x-service` and each service's own).
fn compose_env() -> Env {
    let text = std::fs::read_to_string(path("docker-compose.yml")).unwrap();
    text.lines()
        .map(str::trim)
        .filter_map(|line| line.split_once(": "))
        .filter(|(key, _)| key.starts_with("WMS__"))
        .map(|(key, value)| (key.to_owned(), value.trim_matches('"').to_owned()))
        .collect()
}

#[test]
fn local_and_docker_configs_start_every_service() {
    for (file, env) in [("config/local.toml", Vec::new()), ("config/docker.toml", compose_env())] {
        let _: ingress::Settings = load(file, &env);
        let _: enrich::Settings = load(file, &env);
        let _: service_base::BaseSettings = load(file, &env);
        let _: ship::Settings = load(file, &env);
        let _: notify_webflow::Settings = load(file, &env);
        let warehouse: warehouse::Settings = load(file, &env);
        assert!(warehouse.warehouse.auto_pack, "{file}: the local stack packs by itself");
        let reconcile: reconcile::Settings = load(file, &env);
        assert_eq!(reconcile.webflow.sites.len(), 1);
        let _: retention::Settings = load(file, &env);
    }
    assert!(
        compose_env().contains(&("WMS__PROFILE".into(), "local".into())),
        "the simulator's environment selects the local profile"
    );
}

/// Loads `S` as a service starts (`platform::service::init`): its own checks and the shared
/// sections' production rules.
fn checked<S: ServiceSettings + std::fmt::Debug>(file: &std::path::Path, env: &Env) -> S {
    platform::service::load_checked::<S, _>(Some(file.to_path_buf()), env.clone())
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .settings
}

/// The production files, with what each Deployment gives its pod: its own secrets only (the
/// ingress has no API token file, the workers no webhook secrets file), amqps:// with its own
/// user, PostgreSQL with verify-full: every service starts under the production rules.
#[test]
fn production_configs_start_every_service_with_only_its_own_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let secret = |name: &str, content: &str| {
        let file = dir.path().join(name);
        std::fs::File::create(&file)
            .unwrap()
            .write_all(content.as_bytes())
            .unwrap();
        file.to_str().unwrap().to_owned()
    };
    let ca = secret("ca.crt", "-----BEGIN CERTIFICATE-----\n");
    let token = secret("shop-api-token", "token");
    let hooks = secret("shop-webhook-secrets", "one\ntwo\n");
    let carrier = secret("shipengine-api-key", "TEST_key");
    // The warehouse's operator tokens, in a directory of their own (the other secrets stay
    // where each service's own environment names them).
    let operators = tempfile::tempdir().unwrap();
    for operator in ["oncall", "floor", "support"] {
        std::fs::write(
            operators.path().join(format!("warehouse-token-{operator}")),
            format!("{operator}-token"),
        )
        .unwrap();
    }
    let with = |service: &str, pairs: &[(&str, &str)]| -> Env {
        let mut env: Env = vec![
            ("WMS__DATABASE__SSL_ROOT_CERT".into(), ca.clone()),
            (
                "WMS__AMQP__URL".into(),
                format!("amqps://{service}:pw@rabbitmq.wms.svc:5671/%2f"),
            ),
            (
                "WMS__DATABASE__URL".into(),
                format!("postgres://{service}:pw@postgres.wms.svc/wms"),
            ),
        ];
        env.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        env
    };
    let token_env = |service: &str| with(service, &[("WMS__WEBFLOW__SITES__SHOP__API_TOKEN_FILE", &token)]);
    for file in ["config/production.example.toml", "deploy/k8s/base/config.toml"] {
        // The operator tokens' files are mounted where the file says: here, in `operators`.
        let text = std::fs::read_to_string(path(file)).unwrap().replace(
            "/var/run/secrets/wms/warehouse-token-",
            &format!("{}/warehouse-token-", operators.path().display()),
        );
        let config = operators.path().join("config.toml");
        std::fs::write(&config, text).unwrap();
        let config = config.as_path();
        let ingress: ingress::Settings = checked(
            config,
            &with(
                "ingress",
                &[("WMS__WEBFLOW__SITES__SHOP__WEBHOOK_SECRETS_FILE", &hooks)],
            ),
        );
        assert_eq!(ingress.webflow.sites["shop"].webhook_secrets.len(), 2);
        assert!(
            !ingress.amqp.declare_topology,
            "{file}: the migrate Job declares the topology, the services only verify it"
        );
        assert!(
            ingress.webflow.sites["shop"].api_token.is_none(),
            "no token in the ingress"
        );
        let _: enrich::Settings = checked(config, &token_env("enrich"));
        let _: service_base::BaseSettings = checked(config, &with("reserve", &[]));
        let ship: ship::Settings = checked(
            config,
            &with("ship", &[("WMS__CARRIER__SHIPENGINE__API_KEY_FILE", &carrier)]),
        );
        assert_eq!(ship.carrier.kind, carrier::CarrierKind::ShipEngine);
        let _: notify_webflow::Settings = checked(config, &token_env("notify-webflow"));
        let warehouse: warehouse::Settings = checked(config, &with("warehouse", &[]));
        assert!(
            warehouse.warehouse.api_tokens.is_empty(),
            "{file}: no legacy admin tokens"
        );
        assert!(warehouse.warehouse.tokens.len() >= 2, "{file}: named, scoped tokens");
        assert!(warehouse.warehouse.console.secure_cookies);
        let _: reconcile::Settings = checked(config, &token_env("reconcile"));
        let prune: retention::Settings = checked(config, &with("prune", &[]));
        assert!(prune.retention.processed_messages_days >= 30.0, "{file}");
        // A worker without its token file names the missing file.
        let err = error::<enrich::Settings>(Some(config.to_path_buf()), &with("enrich", &[]));
        assert!(err.contains("webflow.sites.shop.api_token_file"), "{err}");
    }
}

/// Every service refuses, under the production profile, the shared sections' insecure
/// settings: database TLS off (by default, by key, by URL), the guest AMQP user (no opt-out),
/// plain amqp:// (unless `amqp.allow_plaintext`); the opt-outs are reported for the log.
#[test]
fn the_production_profile_refuses_insecure_transport_and_the_guest_user_in_every_service() {
    fn refused<S: ServiceSettings + std::fmt::Debug>(service: &str) {
        let base: Env = vec![
            ("WMS__AMQP__URL".into(), "amqps://svc:pw@rabbitmq:5671/%2f".into()),
            (
                "WMS__DATABASE__URL".into(),
                "postgres://svc:pw@db/wms?sslmode=verify-full".into(),
            ),
            (
                "WMS__SECRETS__KEY_FILE".into(),
                "/var/run/secrets/wms/secrets-key".into(),
            ),
            // What each service needs besides (its own checks run first).
            (
                "WMS__WEBFLOW__SITES__SHOP__SITE_ID".into(),
                "0123456789abcdef01234567".into(),
            ),
            ("WMS__WEBFLOW__SITES__SHOP__API_TOKEN".into(), "t".into()),
            ("WMS__WEBFLOW__SITES__SHOP__WEBHOOK_SECRETS".into(), "s".into()),
            ("WMS__CARRIER__KIND".into(), "shipengine".into()),
            ("WMS__CARRIER__SHIPENGINE__API_KEY".into(), "k".into()),
            ("WMS__WAREHOUSE__API_TOKENS".into(), "t".into()),
        ];
        let load = |changes: &[(&str, &str)]| {
            let mut env = base.clone();
            for (key, value) in changes {
                env.retain(|(k, _)| k != key);
                env.push(((*key).into(), (*value).into()));
            }
            platform::service::load_checked::<S, _>(None, env)
        };
        let outcome = load(&[]).unwrap_or_else(|e| panic!("{service}: {e}"));
        assert!(outcome.opt_outs.is_empty(), "{service}: {:?}", outcome.opt_outs);
        let key_of = |result: Result<platform::service::Checked<S>, SettingsError>| match result {
            Err(SettingsError::Insecure { key, .. }) => key,
            other => panic!("{service}: expected a production refusal, got {other:?}"),
        };
        if service == "prune" {
            // It reads no [amqp]: it never talks to RabbitMQ, so no broker setting stops it.
            load(&[("WMS__AMQP__URL", "amqp://guest:guest@rabbitmq:5672/%2f")]).unwrap();
        } else {
            amqp_refusals(service, &load, &key_of);
        }
        for url in ["postgres://svc:pw@db/wms", "postgres://svc:pw@db/wms?sslmode=disable"] {
            assert_eq!(key_of(load(&[("WMS__DATABASE__URL", url)])), "database.ssl_mode");
        }
        let opted = load(&[
            ("WMS__DATABASE__URL", "postgres://svc:pw@db/wms"),
            ("WMS__DATABASE__ALLOW_PLAINTEXT", "true"),
        ])
        .unwrap();
        assert!(opted.opt_outs[0].contains("database.allow_plaintext"), "{service}");
    }
    for_every_service!(refused);
    // The same settings under a local profile: accepted.
    let local: Env = vec![("WMS__PROFILE".into(), "local".into())];
    platform::service::load_checked::<service_base::BaseSettings, _>(None, local).unwrap();
}

/// Under the production profile, every service that reads or writes sealed store secrets
/// refuses to start without `secrets.key_file` (the built-in development key is public); the
/// others do not need it.
#[test]
fn the_production_profile_refuses_services_that_seal_without_a_key_file() {
    /// The key the production profile refuses, if any (with `secrets.key_file` set or not).
    fn outcome<S: ServiceSettings + std::fmt::Debug>(service: &str, key_file: bool) -> Option<String> {
        let mut env: Env = vec![
            ("WMS__AMQP__URL".into(), "amqps://svc:pw@rabbitmq:5671/%2f".into()),
            (
                "WMS__DATABASE__URL".into(),
                "postgres://svc:pw@db/wms?sslmode=verify-full".into(),
            ),
            (
                "WMS__WEBFLOW__SITES__SHOP__SITE_ID".into(),
                "0123456789abcdef01234567".into(),
            ),
            ("WMS__WEBFLOW__SITES__SHOP__API_TOKEN".into(), "t".into()),
            ("WMS__WEBFLOW__SITES__SHOP__WEBHOOK_SECRETS".into(), "s".into()),
            ("WMS__CARRIER__KIND".into(), "shipengine".into()),
            ("WMS__CARRIER__SHIPENGINE__API_KEY".into(), "k".into()),
            ("WMS__WAREHOUSE__API_TOKENS".into(), "t".into()),
        ];
        if key_file {
            env.push(("WMS__SECRETS__KEY_FILE".into(), "/run/secrets/wms-keys".into()));
        }
        match platform::service::load_checked::<S, _>(None, env) {
            Ok(_) => None,
            Err(SettingsError::Insecure { key, .. }) => Some(key),
            Err(other) => panic!("{service}: {other}"),
        }
    }
    let refused = Some("secrets.key_file".to_owned());
    // The services that open sealed store secrets: refused without the key file, started with it.
    for (service, without, with) in [
        (
            "ingress",
            outcome::<ingress::Settings>("ingress", false),
            outcome::<ingress::Settings>("ingress", true),
        ),
        (
            "enrich",
            outcome::<enrich::Settings>("enrich", false),
            outcome::<enrich::Settings>("enrich", true),
        ),
        (
            "notify-webflow",
            outcome::<notify_webflow::Settings>("notify-webflow", false),
            outcome::<notify_webflow::Settings>("notify-webflow", true),
        ),
        (
            "reconcile",
            outcome::<reconcile::Settings>("reconcile", false),
            outcome::<reconcile::Settings>("reconcile", true),
        ),
        (
            "warehouse",
            outcome::<warehouse::Settings>("warehouse", false),
            outcome::<warehouse::Settings>("warehouse", true),
        ),
    ] {
        assert_eq!(without, refused, "{service} without secrets.key_file");
        assert_eq!(with, None, "{service} with secrets.key_file");
    }
    assert_eq!(outcome::<service_base::BaseSettings>("reserve", false), None);
    assert_eq!(outcome::<ship::Settings>("ship", false), None);
    assert_eq!(outcome::<retention::Settings>("prune", false), None);
}

/// What loading a service's settings with some environment changes gave.
type Loaded<S> = Result<platform::service::Checked<S>, SettingsError>;
/// Loads a service's settings with some environment changes.
type Loader<'a, S> = dyn Fn(&[(&str, &str)]) -> Loaded<S> + 'a;

/// The shared [amqp] refusals: the guest user (no opt-out), plain amqp:// (unless opted out).
fn amqp_refusals<S: std::fmt::Debug>(service: &str, load: &Loader<'_, S>, key_of: &dyn Fn(Loaded<S>) -> String) {
    for url in ["amqps://guest:guest@rabbitmq:5671/%2f", "amqps://rabbitmq:5671/%2f"] {
        assert_eq!(
            key_of(load(&[("WMS__AMQP__URL", url), ("WMS__AMQP__ALLOW_PLAINTEXT", "true")])),
            "amqp.url"
        );
    }
    let plain = [("WMS__AMQP__URL", "amqp://svc:pw@rabbitmq:5672/%2f")];
    assert_eq!(key_of(load(&plain)), "amqp.url");
    let opted = load(&[plain[0], ("WMS__AMQP__ALLOW_PLAINTEXT", "true")]).unwrap();
    assert!(opted.opt_outs[0].contains("amqp.allow_plaintext"), "{service}");
}

/// `WMS_CHECK_CONFIG=1`: the binary (`make build` put it in target/debug) checks its
/// configuration, says so and exits, without connecting anywhere.
#[test]
fn a_binary_checks_its_configuration_and_exits() {
    let binary = path("target/debug/warehouse");
    let run = |env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(&binary);
        command.env_clear().env("WMS_CHECK_CONFIG", "1");
        for (key, value) in env {
            command.env(key, value);
        }
        command
            .output()
            .unwrap_or_else(|e| panic!("{}: {e} (cargo build --workspace --bins)", binary.display()))
    };
    // Production defaults: the guest user on plain amqp:// is refused, by name.
    let refused = run(&[
        ("WMS__WAREHOUSE__API_TOKENS", "t"),
        ("WMS__SECRETS__KEY_FILE", "/var/run/secrets/wms/secrets-key"),
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("`amqp.url` is refused under profile = \"production\""),
        "{stderr}"
    );
    let cookies = run(&[
        ("WMS__WAREHOUSE__API_TOKENS", "t"),
        ("WMS__SECRETS__KEY_FILE", "/var/run/secrets/wms/secrets-key"),
        ("WMS__WAREHOUSE__CONSOLE__SECURE_COOKIES", "false"),
    ]);
    assert!(String::from_utf8_lossy(&cookies.stderr).contains("warehouse.console.secure_cookies"));
    // A passing configuration with an opt-out: ok, and the opt-out said. (Nothing listens on
    // these addresses: the check connects to nothing.)
    let ok = run(&[
        ("WMS__WAREHOUSE__API_TOKENS", "t"),
        ("WMS__SECRETS__KEY_FILE", "/var/run/secrets/wms/secrets-key"),
        ("WMS__AMQP__URL", "amqp://warehouse:pw@192.0.2.1:5672/%2f"),
        ("WMS__AMQP__ALLOW_PLAINTEXT", "true"),
        (
            "WMS__DATABASE__URL",
            "postgres://warehouse:pw@192.0.2.1/wms?sslmode=require",
        ),
    ]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout} {}", String::from_utf8_lossy(&ok.stderr));
    assert!(stdout.contains("configuration ok (profile production)"), "{stdout}");
    assert!(stdout.contains("amqp.allow_plaintext"), "{stdout}");
}

#[test]
fn a_misspelt_key_is_refused_by_name_in_a_file_and_in_the_environment() {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    write!(
        file,
        "profile = \"local\"\n[webflow.sites.shop]\nsite_id = \"65f0c0ffee0000000000beef\"\nwebhook_secret = \"s\"\n"
    )
    .unwrap();
    let file = Some(file.path().to_path_buf());
    let env: Env = vec![("WMS__WEBFLOW__SITES__SHOP__WEBHOOK_SECRETS".into(), "s".into())];
    // Every service that reads `[webflow]` refuses it.
    for err in [
        error::<ingress::Settings>(file.clone(), &env),
        error::<enrich::Settings>(file.clone(), &env),
        error::<warehouse::Settings>(file.clone(), &env),
        error::<notify_webflow::Settings>(file.clone(), &env),
        error::<reconcile::Settings>(file.clone(), &env),
    ] {
        assert!(
            err.contains("unknown setting: `webflow.sites.shop.webhook_secret`"),
            "{err}"
        );
    }
    // In the environment, the message names the variable too.
    let env: Env = vec![
        ("WMS__PROFILE".into(), "local".into()),
        ("WMS__CARRIER__SHIPENGINE__APIKEY".into(), "k".into()),
    ];
    let err = error::<ship::Settings>(None, &env);
    assert!(
        err.contains("`carrier.shipengine.apikey` (from WMS__CARRIER__SHIPENGINE__APIKEY)"),
        "{err}"
    );
    let env: Env = vec![("WMS__WORKER__CONCURENCY".into(), "4".into())];
    let err = error::<service_base::BaseSettings>(None, &env);
    assert!(err.contains("`worker.concurency`"), "{err}");
}

/// Each top-level key some service reads is in platform's list, and each entry of the list is
/// read by some service: a section added to a service without the list (or left in the list
/// after its last reader went) fails here.
#[test]
fn every_section_is_known() {
    let mut read = std::collections::BTreeSet::new();
    macro_rules! collect {
        ($($t:ty),*) => {$(
            for section in KNOWN_TOP_LEVEL_KEYS.iter().chain(["bogus"].iter()) {
                if reads_section::<$t>(section) {
                    read.insert(*section);
                }
            }
        )*};
    }
    collect!(
        ingress::Settings,
        enrich::Settings,
        service_base::BaseSettings,
        ship::Settings,
        notify_webflow::Settings,
        warehouse::Settings,
        reconcile::Settings,
        retention::Settings
    );
    let listed: std::collections::BTreeSet<&str> = KNOWN_TOP_LEVEL_KEYS
        .iter()
        .copied()
        .filter(|k| *k != "profile")
        .collect();
    assert_eq!(read, listed);
}

#[test]
fn the_production_profile_refuses_the_sandbox_carrier_and_plain_http() {
    fn refused<T: DeserializeOwned + Validate + std::fmt::Debug>(service: &str) {
        // No profile: production.
        let env: Env = vec![
            ("WMS__WEBFLOW__API_BASE_URL".into(), "http://127.0.0.1:8090/v2".into()),
            ("WMS__WEBFLOW__ALLOW_INSECURE_HTTP".into(), "true".into()),
        ];
        let err = error::<T>(None, &env);
        assert!(
            err.contains("`webflow.allow_insecure_http`") && err.contains("production"),
            "{service}: {err}"
        );
    }
    for_every_service!(refused);
    // The sandbox carrier is the default: production must name the real one.
    let err = error::<ship::Settings>(None, &Vec::new());
    assert!(
        err.contains("`carrier.kind`") && err.contains("profile = \"local\""),
        "{err}"
    );
    let env: Env = vec![("WMS__CARRIER__KIND".into(), "sandbox".into())];
    let err = error::<ship::Settings>(None, &env);
    assert!(err.contains("`carrier.kind`"), "{err}");
    let env: Env = vec![
        ("WMS__PROFILE".into(), "local".into()),
        ("WMS__CARRIER__KIND".into(), "sandbox".into()),
    ];
    let _: ship::Settings = load_from(None, env).unwrap();
}

/// The simulator (`make build` put it in target/debug) refuses to start outside a local profile.
#[test]
fn the_simulator_refuses_to_run_under_the_production_profile() {
    let binary = path("target/debug/webflow-sim");
    let output = std::process::Command::new(&binary)
        .args(["--bind", "127.0.0.1:0"])
        .env_remove("WMS_CONFIG")
        .env_remove("WMS__PROFILE")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (cargo build --workspace --bins)", binary.display()));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("webflow-sim runs only with profile = \"local\""),
        "{stderr}"
    );
}
