//! The results table: one row per measurement, raw `rados bench` and library side by side.

use std::fmt::Write as _;
use std::time::Duration;

/// What one phase of a benchmark did: how many operations, how many units of work (keys,
/// objects) they carried, and how long they took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Store calls completed.
    pub ops: u64,
    /// Units of work completed (equal to `ops` when one call is one unit).
    pub units: u64,
    /// Wall-clock time from the first submission to the last completion.
    pub elapsed: Duration,
}

impl Measured {
    /// Units per second.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.units as f64 / secs } else { 0.0 }
    }
}

/// One line of the results table.
///
/// A comparison row holds one rate per round for each side, in round order: `raw[i]` and
/// `library[i]` were measured back to back. A library-only row has no raw rates.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What was measured, like "4 KiB write_full".
    pub name: String,
    /// Operations kept in flight, as shown ("16", "1").
    pub in_flight: String,
    /// Unit of the rates, like "ops/s" or "keys/s".
    pub unit: &'static str,
    /// The `rados bench` rates, one per round (empty: no raw equivalent).
    pub raw: Vec<f64>,
    /// The library's rates, one per round.
    pub library: Vec<f64>,
}

impl Row {
    /// library / raw: the median of the per-round ratios, when both sides were measured.
    ///
    /// Each round's two rates were measured back to back, under the same background load;
    /// their ratio cancels most of the drift between rounds, which the ratio of the two
    /// medians (taken from different rounds) would not.
    pub fn ratio(&self) -> Option<f64> {
        median(&self.round_ratios())
    }

    /// library / raw of each round, from rates measured back to back.
    pub fn round_ratios(&self) -> Vec<f64> {
        self.raw.iter().zip(&self.library).filter(|(r, _)| **r > 0.0).map(|(r, l)| l / r).collect()
    }
}

/// The median of some rates (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Renders the rows as a markdown table: the median rate of each side, the median of the
/// per-round ratios ([`Row::ratio`]) and, when some comparison ran more than one round, the
/// ratio of every round (the spread shows how far to trust the median).
pub fn markdown_table(rows: &[Row]) -> String {
    let per_round = rows.iter().any(|r| r.round_ratios().len() > 1);
    let mut out =
        String::from("| measurement | in flight | raw `rados bench` | library (`RadosStore`) | library / raw |");
    out.push_str(if per_round { " per round |\n" } else { "\n" });
    out.push_str("| --- | ---: | ---: | ---: | ---: |");
    out.push_str(if per_round { " --- |\n" } else { "\n" });
    for r in rows {
        let rate = |v: &[f64]| median(v).map_or_else(|| "—".to_string(), |m| format!("{} {}", thousands(m), r.unit));
        let ratio = r.ratio().map_or_else(|| "—".to_string(), |x| format!("{x:.2}"));
        // Writing into a String cannot fail.
        let _ = write!(out, "| {} | {} | {} | {} | {} |", r.name, r.in_flight, rate(&r.raw), rate(&r.library), ratio);
        if per_round {
            let each: Vec<String> = r.round_ratios().iter().map(|x| format!("{x:.2}")).collect();
            let _ = write!(out, " {} |", if each.is_empty() { "—".to_string() } else { each.join(", ") });
        }
        out.push('\n');
    }
    out
}

/// A rate rounded to an integer with thousands separators: `12345.6` → `"12,346"`.
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_with_separators() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.5), "1,000");
        assert_eq!(thousands(12_345.6), "12,346");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    fn row(name: &str, unit: &'static str, raw: &[f64], library: &[f64]) -> Row {
        Row { name: name.into(), in_flight: "16".into(), unit, raw: raw.to_vec(), library: library.to_vec() }
    }

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        let r = row("w", "ops/s", &[100.0, 200.0, 400.0], &[100.0, 100.0, 400.0]);
        assert_eq!(r.round_ratios(), vec![1.0, 0.5, 1.0]);
        // The median of the paired ratios, not median(library) / median(raw) = 0.5.
        assert_eq!(r.ratio(), Some(1.0));
        assert_eq!(row("x", "ops/s", &[], &[5.0]).ratio(), None);
    }

    #[test]
    fn renders_one_round_without_per_round_column() {
        let rows = [row("4 KiB write", "ops/s", &[5000.0], &[5500.0]), row("omap get", "keys/s", &[], &[1234.0])];
        let t = markdown_table(&rows);
        assert!(t.contains("| 4 KiB write | 16 | 5,000 ops/s | 5,500 ops/s | 1.10 |\n"), "{t}");
        assert!(t.contains("| omap get | 16 | — | 1,234 keys/s | — |\n"), "{t}");
        assert!(!t.contains("per round"), "{t}");
        assert_eq!(t.lines().count(), 4);
    }

    #[test]
    fn renders_rounds_with_per_round_ratios() {
        let rows = [
            row("4 KiB write", "ops/s", &[100.0, 200.0, 400.0], &[100.0, 100.0, 400.0]),
            row("cas", "ops/s", &[], &[9.0]),
        ];
        let t = markdown_table(&rows);
        assert!(t.starts_with("| measurement | in flight | raw `rados bench` | library (`RadosStore`) | library / raw | per round |\n| --- | ---: | ---: | ---: | ---: | --- |\n"), "{t}");
        assert!(t.contains("| 4 KiB write | 16 | 200 ops/s | 100 ops/s | 1.00 | 1.00, 0.50, 1.00 |\n"), "{t}");
        assert!(t.contains("| cas | 16 | — | 9 ops/s | — | — |\n"), "{t}");
    }

    #[test]
    fn rate_of_measurement() {
        let m = Measured { ops: 10, units: 10_000, elapsed: Duration::from_millis(500) };
        assert_eq!(m.rate(), 20_000.0);
        assert_eq!(Measured { ops: 0, units: 0, elapsed: Duration::ZERO }.rate(), 0.0);
    }
}
