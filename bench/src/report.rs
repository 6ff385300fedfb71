//! The figures: samples per workload and contender, their medians and
//! spread, the markdown table and the targets of the issue.

use crate::verify::Profiles;
use crate::workload::Workload;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The hand-written contender every ratio is taken against.
pub const BASELINE: &str = "tokio-postgres";
/// The contender under test.
pub const STORE: &str = "store";
/// The other library.
pub const SQLX: &str = "sqlx";
/// pgbench's column.
pub const PGBENCH: &str = "pgbench";

/// The store's least ratio to the baseline on every workload.
const MIN_RATIO: f64 = 0.95;
/// W2's least share of pgbench's 16-client rate.
const MIN_PGBENCH_SHARE: f64 = 0.80;
/// The most one checkout and return of W8 may cost, in µs.
const MAX_CHECKOUT_MICROS: f64 = 5.0;

/// The median and the range of one contender's rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The median rate.
    pub median: f64,
    /// The slowest round.
    pub min: f64,
    /// The fastest round.
    pub max: f64,
}

impl Summary {
    /// Summarises rates; `None` when there are none.
    pub fn of(rates: &[f64]) -> Option<Summary> {
        let mut sorted = rates.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Some(Summary {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        })
    }
}

/// The rates (operations per second) of every round, by workload and
/// contender.
#[derive(Debug, Default)]
pub struct Samples {
    rates: BTreeMap<(Workload, &'static str), Vec<f64>>,
}

impl Samples {
    /// Records one round.
    pub fn add(&mut self, workload: Workload, contender: &'static str, ops_per_second: f64) {
        self.rates
            .entry((workload, contender))
            .or_default()
            .push(ops_per_second);
    }

    /// The summary of one contender on one workload, in operations per
    /// second.
    pub fn summary(&self, workload: Workload, contender: &str) -> Option<Summary> {
        self.rates
            .iter()
            .find(|((w, c), _)| *w == workload && *c == contender)
            .and_then(|(_, rates)| Summary::of(rates))
    }

    fn ratio(&self, workload: Workload, contender: &str, to: &str) -> Option<f64> {
        Some(self.summary(workload, contender)?.median / self.summary(workload, to)?.median)
    }
}

/// `12345.6` as `12,346`.
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `4` for 4.0, `4.7` for 4.666.
fn trimmed(value: f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
}

fn cell(samples: &Samples, workload: Workload, contender: &str) -> String {
    let scale = workload.rows_per_op();
    samples
        .summary(workload, contender)
        .map(|s| {
            format!(
                "{} ({}–{})",
                grouped(s.median * scale),
                grouped(s.min * scale),
                grouped(s.max * scale)
            )
        })
        .unwrap_or_else(|| "—".to_owned())
}

fn ratio_cell(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "—".to_owned(), |r| format!("{r:.2}×"))
}

/// The markdown table: per workload the median rate (and the range of the
/// rounds) of each contender, its ratios, and the round trips per operation
/// the wire showed.
pub fn table(samples: &Samples, profiles: &Profiles, workloads: &[Workload]) -> String {
    let mut out = String::new();
    out.push_str(
        "| | workload | tasks | unit | round trips/op | tokio-postgres | store | sqlx \
         | store ÷ tp | sqlx ÷ tp | store ÷ sqlx | pgbench -S |\n",
    );
    out.push_str("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for &w in workloads {
        let trips = profiles
            .get(&w)
            .map(|all| {
                all.iter()
                    .map(|p| trimmed(p.round_trips))
                    .collect::<Vec<_>>()
                    .join(" / ")
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            w.id(),
            w.title(),
            w.tasks(),
            w.unit(),
            trips,
            cell(samples, w, BASELINE),
            cell(samples, w, STORE),
            cell(samples, w, SQLX),
            ratio_cell(samples.ratio(w, STORE, BASELINE)),
            ratio_cell(samples.ratio(w, SQLX, BASELINE)),
            ratio_cell(samples.ratio(w, STORE, SQLX)),
            cell(samples, w, PGBENCH),
        );
    }
    out
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}

/// The targets, each with its figures and whether it is met.
pub fn targets(samples: &Samples, workloads: &[Workload]) -> String {
    let mut out = String::new();
    let mut below_baseline = Vec::new();
    let mut below_sqlx = Vec::new();
    for &w in workloads {
        if let Some(r) = samples.ratio(w, STORE, BASELINE) {
            if r < MIN_RATIO {
                below_baseline.push(format!("{} {r:.3}×", w.id()));
            }
        }
        if let Some(r) = samples.ratio(w, STORE, SQLX) {
            if r < 1.0 {
                below_sqlx.push(format!("{} {r:.3}×", w.id()));
            }
        }
    }
    let listed = |misses: &[String]| {
        if misses.is_empty() {
            String::new()
        } else {
            format!(" (below on {})", misses.join(", "))
        }
    };
    let _ = writeln!(
        out,
        "- store ≥ {MIN_RATIO}× tokio-postgres on every workload: {}{}",
        verdict(below_baseline.is_empty()),
        listed(&below_baseline)
    );
    let _ = writeln!(
        out,
        "- store ≥ sqlx on every workload: {}{}",
        verdict(below_sqlx.is_empty()),
        listed(&below_sqlx)
    );
    if let (Some(w2), Some(pg)) = (
        samples.summary(Workload::UserById, STORE),
        samples.summary(Workload::UserById, PGBENCH),
    ) {
        let share = w2.median / pg.median;
        let _ = writeln!(
            out,
            "- W2 ≥ {:.0}% of pgbench's 16-client select-only rate: {} (store {} ops/s = {:.0}% of {}; tokio-postgres {:.0}%)",
            MIN_PGBENCH_SHARE * 100.0,
            verdict(share >= MIN_PGBENCH_SHARE),
            grouped(w2.median),
            share * 100.0,
            grouped(pg.median),
            samples
                .summary(Workload::UserById, BASELINE)
                .map_or(0.0, |b| b.median / pg.median * 100.0),
        );
    }
    if let Some(store) = samples.summary(Workload::Checkout, STORE) {
        let micros = |s: Option<Summary>| s.map_or(f64::NAN, |s| 1e6 / s.median);
        let cost = micros(Some(store));
        let _ = writeln!(
            out,
            "- W8 checkout + return ≤ {MAX_CHECKOUT_MICROS} µs: {} (store {cost:.2} µs, tokio-postgres {:.2} µs, sqlx {:.2} µs: \
             wall time per operation of 16 tasks, 1 / median rate)",
            verdict(cost <= MAX_CHECKOUT_MICROS),
            micros(samples.summary(Workload::Checkout, BASELINE)),
            micros(samples.summary(Workload::Checkout, SQLX)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ranges() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(grouped(1234567.4), "1,234,567");
        assert_eq!(grouped(999.6), "1,000");
        assert_eq!(grouped(12.0), "12");
        assert_eq!(trimmed(4.0), "4");
        assert_eq!(trimmed(14.0 / 3.0), "4.7");
    }

    #[test]
    fn missed_targets_are_named() {
        let mut samples = Samples::default();
        for (contender, rate) in [(BASELINE, 100.0), (STORE, 90.0), (SQLX, 80.0)] {
            samples.add(Workload::UserById, contender, rate);
        }
        let text = targets(&samples, &[Workload::UserById]);
        assert!(text.contains("**missed** (below on W2 0.900×)"), "{text}");
        assert!(
            text.contains("store ≥ sqlx on every workload: met"),
            "{text}"
        );
    }
}
