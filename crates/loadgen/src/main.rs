//! `wms-loadgen`: parses the command line, starts telemetry and runs one scenario (see
//! docs/benchmarks.md for the commands, scripts/bench.sh for the whole run).

use clap::{Parser, Subcommand};
use loadgen::scenarios::{fair, flow, ingress, pipeline, summary};

#[derive(Parser)]
#[command(about = "Load generator and benchmarks for the WMS bridge")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingress throughput and latency versus publishing straight to RabbitMQ.
    Ingress(ingress::IngressOptions),
    /// Orders per second from webhook to reserved, through ingress, enrich and reserve.
    Pipeline(pipeline::PipelineOptions),
    /// Creates `orders` paid orders in the simulator (their webhooks flow through the pipeline)
    /// and waits until all are `state` (e.g. shipped). Prints the time and latency percentiles.
    Flow(flow::FlowOptions),
    /// Per-store fairness: drains the big store's backlog of shipped orders while small stores
    /// place orders; reports the drain time, the small stores' latency, 429s, worker slots and
    /// PostgreSQL connections (run `fair-sites` first, and `flow --state shipped` for the backlog).
    Fair(fair::FairOptions),
    /// Writes the small stores' configuration for `fair` and prints the simulator's `--extra-sites`.
    FairSites(fair::SitesOptions),
    /// The summary of an A/B results table (scripts/bench-ab.sh, scripts/bench-flow-ab.sh):
    /// each side's median and range of every measure, and b/a of the medians.
    AbSummary(summary::AbSummaryOptions),
    /// The median and quartiles of every round's ingress/baseline ratio of one side (a file
    /// with one number a line).
    RoundsSummary(summary::RoundsSummaryOptions),
    /// NUMERATOR * scale / DENOMINATOR, for the scripts' ratios (nothing when DENOMINATOR is not above 0).
    Ratio(summary::RatioOptions),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    loadgen::init_process();
    match cli.command {
        Command::Ingress(options) => ingress::run(options).await,
        Command::Pipeline(options) => pipeline::run(options).await,
        Command::Flow(options) => flow::run(options).await,
        Command::Fair(options) => fair::run(options).await,
        Command::FairSites(options) => fair::write_sites(&options),
        Command::AbSummary(options) => summary::ab_summary(&options),
        Command::RoundsSummary(options) => summary::rounds_summary(&options),
        Command::Ratio(options) => summary::ratio(&options),
    }
}
