//! The summaries of the A/B benchmark scripts (scripts/bench-ab.sh, scripts/bench-flow-ab.sh):
//! each side's median and range of every measure of a results table, and the spread of the
//! ingress ratio over every round. `wms-loadgen ab-summary` and `wms-loadgen rounds-summary`
//! print them.

use std::fmt::Write as _;

/// The summary of an A/B results table: tab-separated, a header line, column 2 names the side,
/// columns 3.. are the measures. One line per measure: side `a`'s median and range, side `b`'s,
/// and b/a of the medians. A measure that is 0 on both sides (not measured) is left out.
pub fn ab_summary(table: &str, a: &str, b: &str) -> String {
    let mut lines = table.lines();
    let names: Vec<&str> = lines
        .next()
        .map(|header| header.split('\t').skip(2).collect())
        .unwrap_or_default();
    let rows: Vec<Vec<&str>> = lines.map(|line| line.split('\t').collect()).collect();
    let column = |side: &str, measure: usize| -> Vec<f64> {
        rows.iter()
            .filter(|row| row.get(1) == Some(&side))
            .map(|row| row.get(measure + 2).map_or(0.0, |v| leading_number(v)))
            .collect()
    };
    let mut out = String::new();
    for (measure, name) in names.iter().enumerate() {
        let (of_a, of_b) = (Spread::of(&column(a, measure)), Spread::of(&column(b, measure)));
        if of_a.median == 0.0 && of_b.median == 0.0 {
            continue;
        }
        let ratio = if of_a.median > 0.0 {
            of_b.median / of_a.median
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "{name:<26} {a} {:9.3} ({:.3}-{:.3})   {b} {:9.3} ({:.3}-{:.3})   {b}/{a} {ratio:.3}",
            of_a.median, of_a.low, of_a.high, of_b.median, of_b.low, of_b.high,
        );
    }
    out
}

/// One line on every round's ingress/baseline ratio of one side (one number a line): the
/// median and the quartiles.
pub fn rounds_summary(rounds: &str, side: &str) -> String {
    let mut values: Vec<f64> = rounds
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(leading_number)
        .collect();
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let at = |index: usize| values.get(index).copied().unwrap_or(0.0);
    let median = if n % 2 == 1 {
        at(n / 2)
    } else {
        (at((n / 2).wrapping_sub(1)) + at(n / 2)) / 2.0
    };
    format!(
        "ingress/baseline, every round of every run, {side}: median {median:.2}, quartiles {:.2}-{:.2} ({n} rounds)\n",
        at(n / 4),
        at(3 * n / 4),
    )
}

/// `numerator * scale / denominator` with `decimals` decimals, `None` unless the denominator
/// is above 0 (the scripts' ratios: nothing to compare against when a side measured nothing).
pub fn ratio(numerator: &str, denominator: &str, scale: f64, decimals: usize) -> Option<String> {
    let denominator = leading_number(denominator);
    (denominator > 0.0).then(|| format!("{:.decimals$}", leading_number(numerator) * scale / denominator))
}

/// Median and range of one side's values of a measure (all 0 when it has none).
struct Spread {
    median: f64,
    low: f64,
    high: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Self {
        Self {
            median: crate::stats::median(values),
            low: values.iter().copied().reduce(f64::min).unwrap_or(0.0),
            high: values.iter().copied().reduce(f64::max).unwrap_or(0.0),
        }
    }
}

/// A table cell as a number the way the scripts' cells are read: the number it starts with
/// (after blanks), 0 when it starts with none (an empty cell: not measured in that run).
fn leading_number(cell: &str) -> f64 {
    let cell = cell.trim_start();
    let bytes = cell.as_bytes();
    let mut end = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        end += 1;
    }
    let digits = |from: usize| from + bytes[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    end = digits(end);
    if bytes.get(end) == Some(&b'.') {
        end = digits(end + 1);
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut exponent = end + 1;
        if matches!(bytes.get(exponent), Some(b'+' | b'-')) {
            exponent += 1;
        }
        let after = digits(exponent);
        if after > exponent {
            end = after;
        }
    }
    cell[..end].parse().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A results table as scripts/bench-ab.sh writes it, with an empty cell (INGRESS_ONLY=1
    /// in one run) and a measure neither side has.
    const TABLE: &str = "round\tside\tingress/baseline\tRSS MiB\torders/s\tnot measured\n\
1\told\t0.91\t12.5\t800\t\n\
1\tnew\t0.95\t12.0\t850\t\n\
2\tnew\t0.97\t11.8\t\t\n\
2\told\t0.89\t12.7\t790\t\n\
3\told\t0.93\t12.6\t810\t\n\
3\tnew\t0.96\t11.9\t870\t\n\
4\tnew\t0.99\t12.1\t860\t\n";

    /// What scripts/ab-summary.awk (which this replaced) printed for TABLE (`awk -F'\t' -v a=old -v b=new`), the
    /// summary these functions replace.
    const AWK_SUMMARY: &str = "\
ingress/baseline           old     0.910 (0.890-0.930)   new     0.965 (0.950-0.990)   new/old 1.060
RSS MiB                    old    12.600 (12.500-12.700)   new    11.950 (11.800-12.100)   new/old 0.948
orders/s                   old   800.000 (790.000-810.000)   new   855.000 (0.000-870.000)   new/old 1.069
";

    #[test]
    fn the_summary_is_what_the_awk_script_printed() {
        assert_eq!(ab_summary(TABLE, "old", "new"), AWK_SUMMARY);
    }

    #[test]
    fn a_side_with_no_runs_counts_as_zero() {
        let summary = ab_summary("round\tside\tx\n1\ta\t2\n", "a", "b");
        assert_eq!(
            summary,
            "x                          a     2.000 (2.000-2.000)   b     0.000 (0.000-0.000)   b/a 0.000\n"
        );
    }

    #[test]
    fn rounds_are_summarised_as_the_awk_script_did() {
        // `sort -n | awk` on the same five rounds printed this line.
        assert_eq!(
            rounds_summary("0.93\n0.91\n0.97\n0.9\n0.95\n", "new"),
            "ingress/baseline, every round of every run, new: median 0.93, quartiles 0.91-0.95 (5 rounds)\n"
        );
        assert_eq!(
            rounds_summary("", "old"),
            "ingress/baseline, every round of every run, old: median 0.00, quartiles 0.00-0.00 (0 rounds)\n"
        );
    }

    #[test]
    fn ratios_are_printed_as_the_awk_one_liners_did() {
        // awk 'BEGIN { printf "%.2f", 612 / 733.4 }' and the like.
        assert_eq!(ratio("612", "733.4", 1.0, 2).as_deref(), Some("0.83"));
        assert_eq!(ratio("1234", "110000", 10_000.0, 1).as_deref(), Some("112.2"));
        assert_eq!(ratio("5", "", 1.0, 3), None);
        assert_eq!(ratio("5", "0", 1.0, 3), None);
    }

    #[test]
    fn cells_read_as_their_leading_number() {
        assert_eq!(leading_number(" 12.5"), 12.5);
        assert_eq!(leading_number("7ms"), 7.0);
        assert_eq!(leading_number("1e3"), 1000.0);
        assert_eq!(leading_number("-0.5"), -0.5);
        assert_eq!(leading_number(""), 0.0);
        assert_eq!(leading_number("n/a"), 0.0);
    }
}
