//! `ab-summary` and `rounds-summary`: the A/B scripts' summaries ([`crate::ab_summary`]) of the
//! tables and files they wrote.

use crate::ab_summary;
use anyhow::Context as _;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct AbSummaryOptions {
    /// The tab-separated results table: a header line, the side in column 2, measures from column 3.
    pub table: PathBuf,
    /// The first side's name (column 2).
    #[arg(long, default_value = "a")]
    pub a: String,
    /// The second side's name.
    #[arg(long, default_value = "b")]
    pub b: String,
}

#[derive(clap::Args)]
pub struct RoundsSummaryOptions {
    /// One ratio a line.
    pub rounds: PathBuf,
    /// The side's name, for the line.
    #[arg(long)]
    pub side: String,
}

pub fn ab_summary(options: &AbSummaryOptions) -> anyhow::Result<()> {
    print!(
        "{}",
        ab_summary::ab_summary(&read(&options.table)?, &options.a, &options.b)
    );
    Ok(())
}

pub fn rounds_summary(options: &RoundsSummaryOptions) -> anyhow::Result<()> {
    print!("{}", ab_summary::rounds_summary(&read(&options.rounds)?, &options.side));
    Ok(())
}

#[derive(clap::Args)]
pub struct RatioOptions {
    pub numerator: String,
    pub denominator: String,
    /// Multiplies the ratio (e.g. 10000 for CPU ticks per webhook in microseconds).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    #[arg(long, default_value_t = 2)]
    pub decimals: usize,
}

/// Prints the ratio, or nothing when the denominator is not above 0.
pub fn ratio(options: &RatioOptions) -> anyhow::Result<()> {
    if let Some(ratio) = ab_summary::ratio(
        &options.numerator,
        &options.denominator,
        options.scale,
        options.decimals,
    ) {
        println!("{ratio}");
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}
