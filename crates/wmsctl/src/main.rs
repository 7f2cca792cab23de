//! `wmsctl`: the operator's command line. Tables by default, `--json` for scripts; a failure
//! prints one clear line and exits non-zero.

#![allow(clippy::print_stdout, reason = "a CLI that reports to stdout")]

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use platform::amqp::Topology;
use platform::settings::{SettingsError, Validate};
use serde::Deserialize;
use service_base::BaseSettings;
use std::io::{BufRead, Write};
use webflow::WebflowSettings;
use webflow::{CreateWebhookRequest, TriggerType, WebflowClient};
use wmsctl::dlq::Dlq;
use wmsctl::output::{messages_table, order_text, table};

#[derive(Parser)]
#[command(
    version,
    about = "Operate the Webflow WMS Bridge: dead letters, orders, migrations, RabbitMQ topology and users, reconciliation, sites, merchants"
)]
struct Cli {
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Dead-letter queues.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Orders in the warehouse database.
    Order {
        #[command(subcommand)]
        command: OrderCommand,
    },
    /// Apply pending database migrations.
    Migrate {
        /// Then run this SQL script in one transaction (the Kubernetes migrate Job's grants:
        /// deploy/k8s/base/sql/grants.sql), so the Job needs no second image.
        #[arg(long, value_name = "FILE")]
        then_run: Option<std::path::PathBuf>,
    },
    /// The RabbitMQ topology and who may use it.
    Amqp {
        #[command(subcommand)]
        command: AmqpCommand,
    },
    /// Run the reconciliation once and print its summary.
    Reconcile {
        #[arg(long, required = true)]
        once: bool,
    },
    /// Webflow sites.
    Sites {
        #[command(subcommand)]
        command: SitesCommand,
    },
    /// Webflow webhooks.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// Merchants: who owns stock (each store belongs to one).
    Merchants {
        #[command(subcommand)]
        command: MerchantsCommand,
    },
    /// The keys that seal secrets kept in the database (`secrets.key_file`).
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Stores (Webflow sites) onboarded at runtime, through the warehouse API (an admin token).
    Stores {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: StoresCommand,
    },
}

/// How `wmsctl stores` reaches the warehouse API. The token is read from a file or the
/// environment (`WMS_WAREHOUSE_TOKEN`), never from a command-line value.
#[derive(clap::Args)]
struct ApiArgs {
    /// The warehouse's base URL.
    #[arg(long, env = "WMS_WAREHOUSE_URL", default_value = "http://127.0.0.1:8081")]
    url: String,
    /// A file holding an admin operator token (else `WMS_WAREHOUSE_TOKEN`).
    #[arg(long, env = "WMS_WAREHOUSE_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum StoresCommand {
    /// Every store: config-file and onboarded ones.
    List {
        /// Removed stores too.
        #[arg(long)]
        removed: bool,
    },
    /// Onboards a store: its token is checked with Webflow, then stored encrypted.
    Add {
        name: String,
        #[arg(long)]
        site_id: String,
        #[arg(long, default_value = warehouse_db::merchants::DEFAULT_MERCHANT)]
        merchant: String,
        /// A file holding the site's Webflow API token (else `WEBFLOW_API_TOKEN`).
        #[arg(long, value_name = "FILE")]
        api_token_file: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 60)]
        rate_limit_per_minute: i32,
        /// Webflow does not e-mail the customer when an order is fulfilled.
        #[arg(long)]
        no_fulfillment_email: bool,
        /// Register the bridge's webhooks at Webflow (needs `warehouse.public_ingress_url`).
        #[arg(long)]
        register_webhooks: bool,
    },
    /// Changes a store; only the options given change.
    Set {
        name: String,
        #[arg(long)]
        merchant: Option<String>,
        /// A file holding a new Webflow API token (checked with Webflow first).
        #[arg(long, value_name = "FILE")]
        api_token_file: Option<std::path::PathBuf>,
        #[arg(long)]
        rate_limit_per_minute: Option<i32>,
        #[arg(long)]
        send_fulfillment_email: Option<bool>,
        #[arg(long)]
        inventory_sync: Option<bool>,
        #[arg(long)]
        sku_collection_id: Option<String>,
        #[arg(long)]
        inventory_safety_buffer: Option<i64>,
    },
    /// Removes a store: its webhooks are deleted at Webflow; its orders and history stay.
    Remove {
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum MerchantsCommand {
    /// Every merchant, by name.
    List,
    /// Creates a merchant (fails if the name is taken).
    Add {
        /// 1-63 characters: lower-case letters, digits, `.`, `_` and `-`, starting with a
        /// letter or digit.
        name: String,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Prints a new key line (`<id>:<64 hex digits>`) for `secrets.key_file`: first line to
    /// make it the sealing key, the old lines kept until everything is resealed.
    NewKey {
        /// The key's id, stored beside every value it seals (e.g. the date: 2026-12).
        id: String,
    },
    /// Seals every store token and webhook secret sealed with an older key again with the
    /// current one (the first line of `secrets.key_file`), after a rotation; then the old line
    /// can go. Run it where the services' configuration is (the warehouse pod). Idempotent.
    Reseal,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Every dead-letter queue with its message count.
    List,
    /// Messages of a dead-letter queue with their reason headers (left in the queue).
    Show {
        queue: String,
        #[arg(long, default_value_t = 20)]
        limit: u16,
    },
    /// Publish dead letters back to their work queue (original message id kept).
    Replay {
        queue: String,
        /// Only the messages about this order.
        #[arg(long, conflicts_with = "all")]
        order: Option<String>,
        /// Every message in the queue.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 1_000)]
        limit: u16,
    },
    /// Delete every message of a dead-letter queue (asks first).
    Purge {
        queue: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum AmqpCommand {
    /// Declare the namespace's exchanges, queues and bindings (idempotent), with `amqp.url` a
    /// user allowed to (the `topology` role): the privileged step the services, run with
    /// `amqp.declare_topology = false`, rely on.
    Declare,
    /// Check that every exchange and queue exists (passive declares: any user may).
    Verify,
    /// The RabbitMQ permissions (configure, write, read regexes) of each role on the namespace,
    /// one role a line, tab-separated: what deploy/rabbitmq/users.sh applies.
    Permissions {
        /// The namespace (default: `amqp.namespace`).
        #[arg(long)]
        namespace: Option<String>,
    },
}

#[derive(Subcommand)]
enum OrderCommand {
    /// State, shipment and the full timeline of an order.
    Show { site_id: String, order_id: String },
}

#[derive(Subcommand)]
enum SitesCommand {
    /// Checks each site's token (orders and webhooks readable), lists its webhooks, and
    /// helps find its SKU collection (`webflow.sites.<name>.sku_collection_id`, needed by
    /// `inventory_sync`): lists the site's collections and names the likely one.
    Check,
    /// Each site's Webflow budget (shared per token): limit in force, calls in the last minute,
    /// how far ahead it is booked, work waiting for it and the oldest wait.
    Status,
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// Creates the three ecommerce webhooks pointing at the public URL and prints their secrets.
    Register {
        /// The site's name in the configuration (`webflow.sites.<name>`).
        site: String,
        /// Public base URL of the ingress, e.g. https://webhooks.example.com
        #[arg(long)]
        public_url: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Settings {
    #[serde(flatten)]
    base: BaseSettings,
    webflow: WebflowSettings,
    reconcile: reconcile::ReconcileSettings,
}

impl Validate for Settings {
    fn validate(&mut self) -> Result<(), SettingsError> {
        self.base.amqp.validate()?;
        self.base.database.validate()?;
        self.webflow.validate()
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli).await {
        eprintln!("wmsctl: {error:#}");
        std::process::exit(1);
    }
}

fn print<T: serde::Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", human());
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Needs no configuration: the key is for the configuration.
    if let Command::Secrets {
        command: SecretsCommand::NewKey { id },
    } = &cli.command
    {
        return new_key(id);
    }
    // Talks to the warehouse API only: no configuration of its own.
    if let Command::Stores { api, command } = cli.command {
        return stores(cli.json, api, command).await;
    }
    platform::install_crypto_provider();
    let settings: Settings = platform::settings::load().context("invalid configuration")?;
    // The services' production refusals hold for every command that connects: wmsctl runs as
    // the most privileged users (the schema owner for `migrate`, the topology user for `amqp
    // declare`). Printing the permissions table connects to nothing.
    if !matches!(
        cli.command,
        Command::Amqp {
            command: AmqpCommand::Permissions { .. }
        }
    ) {
        let profile = platform::settings::load_profile().context("invalid configuration")?;
        let opt_outs = settings
            .base
            .check_shared_profile(profile)
            .context("invalid configuration")?;
        for opt_out in opt_outs {
            eprintln!("wmsctl: warning: {opt_out}");
        }
    }
    let json = cli.json;
    match cli.command {
        Command::Dlq { command } => dlq(json, &settings, command).await,
        Command::Order { command } => order(json, &settings, command).await,
        Command::Migrate { then_run } => migrate(json, &settings, then_run.as_deref()).await,
        Command::Amqp { command } => amqp(json, &settings, command).await,
        Command::Reconcile { .. } => reconcile_once(json, &settings).await,
        Command::Sites { command } => sites(json, &settings, command).await,
        Command::Webhooks { command } => webhooks(json, &settings, command).await,
        Command::Merchants { command } => merchants(json, &settings, command).await,
        Command::Secrets {
            command: SecretsCommand::Reseal,
        } => reseal(json, &settings).await,
        // Handled before the configuration is loaded (above); kept for an exhaustive match.
        Command::Secrets {
            command: SecretsCommand::NewKey { id },
        } => new_key(&id),
        // Handled before the configuration is loaded (above); kept for an exhaustive match.
        Command::Stores { api, command } => stores(json, api, command).await,
    }
}

/// `wmsctl stores ...`: through the warehouse API.
async fn stores(json: bool, api: ApiArgs, command: StoresCommand) -> anyhow::Result<()> {
    use reqwest::Method;
    use wmsctl::stores::{Api, secret_from, store_path, stores_table};
    platform::install_crypto_provider();
    let token = secret_from(api.token_file.as_deref(), "WMS_WAREHOUSE_TOKEN", "operator token")?;
    let client = Api::new(&api.url, token)?;
    let show = |store: &serde_json::Value| stores_table(std::slice::from_ref(store));
    match command {
        StoresCommand::List { removed } => {
            let path = if removed {
                "/api/v1/stores?removed=true"
            } else {
                "/api/v1/stores"
            };
            let stores = client.call(Method::GET, path, None).await?;
            let rows = stores.as_array().cloned().unwrap_or_default();
            print(json, &stores, || stores_table(&rows))
        }
        StoresCommand::Add {
            name,
            site_id,
            merchant,
            api_token_file,
            rate_limit_per_minute,
            no_fulfillment_email,
            register_webhooks,
        } => {
            let token = secret_from(api_token_file.as_deref(), "WEBFLOW_API_TOKEN", "Webflow API token")?;
            let body = serde_json::json!({
                "name": name,
                "merchant": merchant,
                "site_id": site_id,
                "api_token": secrecy::ExposeSecret::expose_secret(&token),
                "rate_limit_per_minute": rate_limit_per_minute,
                "send_fulfillment_email": !no_fulfillment_email,
                "register_webhooks": register_webhooks,
            });
            let store = client.call(Method::POST, "/api/v1/stores", Some(&body)).await?;
            print(json, &store, || format!("store `{name}` created\n{}", show(&store)))
        }
        StoresCommand::Set {
            name,
            merchant,
            api_token_file,
            rate_limit_per_minute,
            send_fulfillment_email,
            inventory_sync,
            sku_collection_id,
            inventory_safety_buffer,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(path) = api_token_file {
                let token = secret_from(Some(&path), "WEBFLOW_API_TOKEN", "Webflow API token")?;
                body.insert("api_token".into(), secrecy::ExposeSecret::expose_secret(&token).into());
            }
            if let Some(v) = merchant {
                body.insert("merchant".into(), v.into());
            }
            if let Some(v) = rate_limit_per_minute {
                body.insert("rate_limit_per_minute".into(), v.into());
            }
            if let Some(v) = send_fulfillment_email {
                body.insert("send_fulfillment_email".into(), v.into());
            }
            if let Some(v) = inventory_sync {
                body.insert("inventory_sync".into(), v.into());
            }
            if let Some(v) = sku_collection_id {
                body.insert("sku_collection_id".into(), v.into());
            }
            if let Some(v) = inventory_safety_buffer {
                body.insert("inventory_safety_buffer".into(), v.into());
            }
            if body.is_empty() {
                bail!("nothing to change: give at least one option (see `wmsctl stores set --help`)");
            }
            let store = client
                .call(Method::PATCH, &store_path(&name), Some(&body.into()))
                .await?;
            print(json, &store, || format!("store `{name}` changed\n{}", show(&store)))
        }
        StoresCommand::Remove { name, yes } => {
            if !yes && !confirm(&format!("Remove store `{name}` and delete its webhooks at Webflow?"))? {
                bail!("not removed");
            }
            client.call(Method::DELETE, &store_path(&name), None).await?;
            print(json, &serde_json::json!({"removed": name}), || {
                format!("store `{name}` removed")
            })
        }
    }
}

/// `wmsctl dlq ...`: list, show, replay and purge dead letters.
async fn dlq(json: bool, settings: &Settings, command: DlqCommand) -> anyhow::Result<()> {
    let topology = Topology::from_settings(&settings.base.amqp);
    let amqp_url = secrecy::ExposeSecret::expose_secret(&settings.base.amqp.url).to_owned();
    let dlq = Dlq::connect(&amqp_url, topology)
        .await
        .context("cannot reach RabbitMQ")?;
    match command {
        DlqCommand::List => {
            let queues = dlq.list().await?;
            print(json, &queues, || {
                table(
                    &["queue", "consumer", "messages"],
                    &queues
                        .iter()
                        .map(|q| vec![q.queue.clone(), q.consumer.clone(), q.messages.to_string()])
                        .collect::<Vec<_>>(),
                )
            })
        }
        DlqCommand::Show { queue, limit } => {
            let messages = dlq.show(&queue, limit).await?;
            print(json, &messages, || messages_table(&messages))
        }
        DlqCommand::Replay {
            queue,
            order,
            all,
            limit,
        } => {
            if order.is_none() && !all {
                bail!("say which messages: --order <ORDER_ID> or --all");
            }
            let replayed = dlq.replay(&queue, order.as_deref(), limit).await?;
            print(json, &replayed, || {
                format!("replayed {} message(s)\n{}", replayed.len(), messages_table(&replayed))
            })
        }
        DlqCommand::Purge { queue, yes } => {
            if !yes && !confirm(&format!("delete every message of {queue}?"))? {
                bail!("not purged");
            }
            let purged = dlq.purge(&queue).await?;
            print(json, &serde_json::json!({"queue": queue, "purged": purged}), || {
                format!("purged {purged} message(s) from {queue}")
            })
        }
    }
}

/// `wmsctl order show`: the same typed view the warehouse API answers.
async fn order(json: bool, settings: &Settings, command: OrderCommand) -> anyhow::Result<()> {
    let OrderCommand::Show { site_id, order_id } = command;
    let pool = warehouse_db::connect(&service_base::connect_options(&settings.base.database, 2)).await?;
    let client = pool.get().await?;
    let view = warehouse_db::order_view::load(&*client, &site_id.as_str().into(), &order_id.as_str().into())
        .await?
        .with_context(|| format!("no order {order_id} for site {site_id}"))?;
    print(json, &view, || order_text(&view))
}

/// `wmsctl merchants list|add`: straight on the warehouse database, as `order show` reads it.
async fn merchants(json: bool, settings: &Settings, command: MerchantsCommand) -> anyhow::Result<()> {
    use warehouse_db::merchants::{self, Merchant};
    let pool = warehouse_db::connect(&service_base::connect_options(&settings.base.database, 2)).await?;
    let client = pool.get().await?;
    let rows = |list: &[Merchant]| {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|m| vec![m.name.clone(), m.id.to_string(), m.created_at.to_rfc3339()])
            .collect();
        table(&["NAME", "ID", "CREATED"], &rows)
    };
    match command {
        MerchantsCommand::List => {
            let list = merchants::list(&*client).await?;
            print(json, &list, || rows(&list))
        }
        MerchantsCommand::Add { name } => {
            let merchant = merchants::create(&*client, &name).await?;
            print(json, &merchant, || format!("created merchant {}", merchant.name))
        }
    }
}

/// `wmsctl migrate`.
async fn migrate(json: bool, settings: &Settings, then_run: Option<&std::path::Path>) -> anyhow::Result<()> {
    // The script is read first: a missing file fails before anything changes.
    let script = then_run
        .map(|path| std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display())))
        .transpose()?;
    let pool = warehouse_db::connect(&service_base::connect_options(&settings.base.database, 2)).await?;
    let applied = warehouse_db::migrate::run(&pool).await?;
    if let (Some(script), Some(path)) = (script, then_run) {
        warehouse_db::migrate::run_script(&pool, &script)
            .await
            .with_context(|| {
                format!(
                    "{} failed (the migrations are applied; nothing of the script is)",
                    path.display()
                )
            })?;
    }
    print(
        json,
        &serde_json::json!({"applied": applied, "script": then_run.map(|p| p.display().to_string())}),
        || match then_run {
            Some(path) => format!("{applied} migration(s) applied, then {}", path.display()),
            None => format!("{applied} migration(s) applied"),
        },
    )
}

/// `wmsctl secrets new-key`: the line goes into the key file; nothing else sees it.
fn new_key(id: &str) -> anyhow::Result<()> {
    let line = secrets_at_rest::Keyring::new_key_line(id)?;
    println!("{}", secrecy::ExposeSecret::expose_secret(&line));
    Ok(())
}

/// `wmsctl secrets reseal`: after a key rotation, every sealed value onto the current key.
async fn reseal(json: bool, settings: &Settings) -> anyhow::Result<()> {
    // Under production, never the development key (a pod without the key file would report
    // every value unopenable).
    let profile = platform::settings::load_profile().context("invalid configuration")?;
    settings
        .base
        .secrets
        .check_profile(profile)
        .context("invalid configuration")?;
    let keyring = secrets_at_rest::keyring_or_dev(&settings.base.secrets).context("secrets.key_file")?;
    let pool = warehouse_db::connect(&service_base::connect_options(&settings.base.database, 2)).await?;
    let client = pool.get().await?;
    let report = warehouse_db::store_admin::reseal_all(&**client, &keyring).await?;
    print(json, &report, || {
        format!(
            "resealed {} API token(s) and {} webhook secret(s) with key {}",
            report.api_tokens, report.webhook_secrets, report.key_id
        )
    })?;
    if !report.unopenable_removed.is_empty() {
        eprintln!(
            "wmsctl: warning: {} value(s) of removed stores or webhooks open with no key (history, never opened again): {}",
            report.unopenable_removed.len(),
            report.unopenable_removed.join(", ")
        );
    }
    if !report.unopenable.is_empty() {
        anyhow::bail!(
            "{} value(s) open with no key of secrets.key_file, left as they are: {} (set those stores' tokens or webhooks again)",
            report.unopenable.len(),
            report.unopenable.join(", ")
        );
    }
    Ok(())
}

/// `wmsctl amqp ...`: declare or verify the topology, print the users' permissions.
async fn amqp(json: bool, settings: &Settings, command: AmqpCommand) -> anyhow::Result<()> {
    let topology = Topology::from_settings(&settings.base.amqp);
    match command {
        AmqpCommand::Declare | AmqpCommand::Verify => {
            let properties = lapin::ConnectionProperties::default().with_connection_name("wmsctl".into());
            let connection = platform::amqp::connect_any(&settings.base.amqp.url, properties)
                .await
                .context("cannot connect to RabbitMQ")?;
            let declare = matches!(command, AmqpCommand::Declare);
            let result = if declare {
                topology.declare(&connection).await.context(
                    "cannot declare the topology (amqp.url must be the topology user: wmsctl amqp permissions)",
                )
            } else {
                topology.verify(&connection).await.map_err(anyhow::Error::from)
            };
            let _ = connection.close(200, "done".into()).await;
            result?;
            let (exchanges, queues) = (topology.exchange_names().len(), topology.queue_names().len());
            let verb = if declare { "declared" } else { "present" };
            print(
                json,
                &serde_json::json!({"namespace": topology.namespace(), verb: {"exchanges": exchanges, "queues": queues}}),
                || {
                    format!(
                        "{}: {exchanges} exchanges and {queues} queues {verb}",
                        topology.namespace()
                    )
                },
            )
        }
        AmqpCommand::Permissions { namespace } => {
            let mut amqp = settings.base.amqp.clone();
            if let Some(namespace) = namespace {
                amqp.namespace = namespace;
                amqp.validate()?;
            }
            let permissions = Topology::from_settings(&amqp).all_permissions();
            print(json, &permissions, || {
                permissions
                    .iter()
                    .map(|p| format!("{}\t{}\t{}\t{}", p.role, p.configure, p.write, p.read))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
    }
}

/// `wmsctl reconcile --once`: one reconciliation pass within the reconcile rate budget.
async fn reconcile_once(json: bool, settings: &Settings) -> anyhow::Result<()> {
    let mut job = reconcile::Settings {
        base: settings.base.clone(),
        webflow: settings.webflow.clone(),
        reconcile: settings.reconcile.clone(),
    };
    job.validate()?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let service = reconcile::build(job, shutdown.clone()).await?;
    let summary = service.run_once().await;
    shutdown.cancel();
    let summary = summary?;
    print(json, &summary, || {
        let mut rows = vec![
            vec!["checked".into(), summary.checked.to_string()],
            vec!["api calls".into(), summary.api_calls.to_string()],
            vec![
                "sites skipped (budget busy)".into(),
                format!("{} {}", summary.skipped_busy, summary.skipped_sites.join(" ")),
            ],
        ];
        if summary.already_running {
            rows.push(vec!["skipped: another pass was running".into(), "1".into()]);
        }
        rows.extend(
            summary
                .repaired
                .iter()
                .map(|(k, v)| vec![format!("repaired: {k}"), v.to_string()]),
        );
        table(&["", "count"], &rows)
    })
}

/// `wmsctl sites status`: every site's budget and what waits for it, from the database.
async fn sites_status(json: bool, settings: &Settings) -> anyhow::Result<()> {
    let pool = warehouse_db::connect(&service_base::connect_options(&settings.base.database, 2)).await?;
    let gateway = webflow_gateway::WebflowGateway::from_settings(&settings.webflow, pool)?;
    let status = gateway.status().await?;
    let secs = |s: f64| format!("{s:.1}");
    print(json, &status, || {
        table(
            &[
                "site",
                "token budget",
                "limit/min",
                "learned",
                "calls last min",
                "booked ahead s",
                "reserved",
                "deferred",
                "oldest wait s",
                "paused s",
                "429s",
            ],
            &status
                .iter()
                .map(|s| {
                    vec![
                        s.site_id.clone(),
                        s.budget.key.clone(),
                        format!("{}", s.budget.limit),
                        s.budget
                            .learned_limit
                            .map(|l| l.to_string())
                            .unwrap_or_else(|| "-".into()),
                        s.budget.calls_last_minute.to_string(),
                        secs(s.budget.booked_ahead_secs),
                        s.reserved.to_string(),
                        s.deferred.to_string(),
                        s.oldest_wait_secs.map(secs).unwrap_or_else(|| "-".into()),
                        secs(s.budget.paused_for_secs),
                        s.budget.throttled.to_string(),
                    ]
                })
                .collect::<Vec<_>>(),
        )
    })
}

/// `wmsctl sites check`: each site's token reads orders and webhooks.
async fn sites(json: bool, settings: &Settings, command: SitesCommand) -> anyhow::Result<()> {
    if matches!(command, SitesCommand::Status) {
        return sites_status(json, settings).await;
    }
    let client = webflow_client(&settings.webflow)?;
    let mut report = Vec::new();
    let mut failed = false;
    for (name, site) in &settings.webflow.sites {
        let Some(token) = &site.api_token else {
            failed = true;
            report.push(serde_json::json!({"site": name, "ok": false, "error": "no api_token"}));
            continue;
        };
        let site_id = webflow::SiteId::new(site.site_id.clone());
        let orders = client.list_orders(token, &site_id, None, 0, 1).await;
        let hooks = client.list_webhooks(token, &site_id).await;
        let collections = client.list_collections(token, &site_id).await;
        let sku_collection = sku_collection_check(site, collections.as_ref().ok().map(|c| &c.value));
        let ok = orders.is_ok() && hooks.is_ok() && sku_collection["ok"] != false;
        failed |= !ok;
        report.push(serde_json::json!({
            "site": name,
            "site_id": site.site_id,
            "ok": ok,
            "orders_readable": orders.as_ref().map(|_| true).unwrap_or(false),
            "error": orders.err().map(|e| e.to_string()).or_else(|| hooks.as_ref().err().map(|e| e.to_string())),
            "inventory_sync": site.inventory_sync,
            "sku_collection": sku_collection,
            "collections_error": collections.err().map(|e| e.to_string()),
            "webhooks": hooks.map(|h| h.value.webhooks.iter().map(|w| serde_json::json!({"trigger": w.trigger_type.as_ref().map(|t| t.to_string()), "url": w.url})).collect::<Vec<_>>()).unwrap_or_default(),
        }));
    }
    print(json, &report, || {
        let mut out = table(
            &["site", "ok", "webhooks", "inventory sync", "sku collection", "error"],
            &report
                .iter()
                .map(|r| {
                    vec![
                        r["site"].as_str().unwrap_or_default().to_owned(),
                        r["ok"].to_string(),
                        r["webhooks"].as_array().map(|w| w.len()).unwrap_or(0).to_string(),
                        if r["inventory_sync"] == true { "on" } else { "off" }.to_owned(),
                        r["sku_collection"]["verdict"].as_str().unwrap_or_default().to_owned(),
                        r["error"].as_str().unwrap_or("").to_owned(),
                    ]
                })
                .collect::<Vec<_>>(),
        );
        for r in &report {
            if let Some(collections) = r["sku_collection"]["collections"].as_array()
                && !collections.is_empty()
            {
                out.push_str(&format!(
                    "\n\n{} collections:\n",
                    r["site"].as_str().unwrap_or_default()
                ));
                for c in collections {
                    out.push_str(&format!(
                        "  {}  {:<24} slug {}{}\n",
                        c["id"].as_str().unwrap_or("?"),
                        c["display_name"].as_str().unwrap_or(""),
                        c["slug"].as_str().unwrap_or("?"),
                        if c["likely_sku_collection"] == true {
                            "   <- likely the SKU collection"
                        } else {
                            ""
                        },
                    ));
                }
            }
        }
        out.push_str(SKU_COLLECTION_HELP);
        out
    })?;
    if failed {
        bail!("at least one site failed its check");
    }
    Ok(())
}

const SKU_COLLECTION_HELP: &str = "\n\nStock sync (issue 17) needs each syncing site's SKU collection id in \
webflow.sites.<name>.sku_collection_id. Webflow does not document how to recognise the SKU collection among \
a site's collections; on the sites we know its slug is `sku` (display name \"SKUs\"), marked above as likely. \
Confirm it by opening the collection in the Designer (CMS > SKUs: the id is in the URL) or with \
GET /v2/collections/<id>/items/<variantId of an order line>/inventory answering 200.";

/// What `sites check` says about a site's SKU collection: the configured one found among
/// the site's collections, and which collections look like the SKU collection.
fn sku_collection_check(site: &webflow::SiteSettings, listed: Option<&webflow::CollectionList>) -> serde_json::Value {
    let configured = site.sku_collection_id.as_deref();
    let Some(listed) = listed else {
        return serde_json::json!({
            "configured": configured,
            "verdict": if configured.is_some() { "configured (collections not readable)" } else { "-" },
            "collections": [],
        });
    };
    let likely = |c: &webflow::Collection| {
        c.slug
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("sku") || s.eq_ignore_ascii_case("skus"))
            || c.display_name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case("skus"))
    };
    let collections: Vec<serde_json::Value> = listed
        .collections
        .iter()
        .map(|c| {
            serde_json::json!({
                "id": c.id, "display_name": c.display_name, "slug": c.slug,
                "likely_sku_collection": likely(c),
            })
        })
        .collect();
    let found = configured.is_some_and(|id| listed.collections.iter().any(|c| c.id.as_deref() == Some(id)));
    let (ok, verdict) = match (configured, found) {
        (Some(_), true) => (true, "configured, found"),
        (Some(_), false) => (false, "configured id is not a collection of the site"),
        (None, _) if site.inventory_sync => (false, "missing (inventory_sync is on)"),
        (None, _) => (true, "not configured"),
    };
    serde_json::json!({"configured": configured, "ok": ok, "verdict": verdict, "collections": collections})
}

/// `wmsctl webhooks register`: the three ecommerce webhooks of one site.
async fn webhooks(json: bool, settings: &Settings, command: WebhooksCommand) -> anyhow::Result<()> {
    let WebhooksCommand::Register { site, public_url } = command;
    let site = settings
        .webflow
        .sites
        .get(&site)
        .with_context(|| format!("no site `{site}` in webflow.sites"))?;
    let token = site.api_token.as_ref().context("the site has no api_token")?;
    let client = webflow_client(&settings.webflow)?;
    let url = format!("{}/webhooks/webflow/{}", public_url.trim_end_matches('/'), site.site_id);
    let mut created = Vec::new();
    for trigger in [
        TriggerType::EcommNewOrder,
        TriggerType::EcommOrderChanged,
        TriggerType::EcommInventoryChanged,
    ] {
        let hook = client
            .create_webhook(
                token,
                &webflow::SiteId::new(site.site_id.clone()),
                &CreateWebhookRequest {
                    trigger_type: trigger.clone(),
                    url: url.clone(),
                },
            )
            .await
            .with_context(|| format!("creating the {trigger} webhook"))?;
        created.push(serde_json::json!({"trigger": trigger.to_string(), "id": hook.value.id, "url": url, "secret_key": hook.value.secret_key}));
    }
    print(json, &created, || {
        format!(
            "{}\n\nStore every secret_key in webflow.sites.<name>.webhook_secrets (keep the old ones until the rotation is done).",
            table(
                &["trigger", "id", "secret_key"],
                &created
                    .iter()
                    .map(|c| vec![
                        c["trigger"].as_str().unwrap_or_default().to_owned(),
                        c["id"].as_str().unwrap_or_default().to_owned(),
                        c["secret_key"]
                            .as_str()
                            .unwrap_or("(none: an OAuth app signs with its client secret)")
                            .to_owned(),
                    ])
                    .collect::<Vec<_>>()
            )
        )
    })
}

fn webflow_client(settings: &WebflowSettings) -> anyhow::Result<WebflowClient> {
    Ok(WebflowClient::from_settings(settings)?)
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
