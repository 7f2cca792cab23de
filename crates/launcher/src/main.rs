//! `wms-stack`: `run` is `make run`; `start` and `stop` are the benchmark scripts' process
//! launching (see the `launcher` crate).

use clap::Parser;
use launcher::cli::{Cli, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run(Cli::parse().command).await?;
    Ok(())
}
