//! Reading the output of Ceph's `rados bench`.

/// The `Average IOPS:` figure of a `rados bench` write, seq or rand run.
///
/// When the line is missing (it has been renamed across Ceph releases) the figure is
/// derived from `Total writes made:` / `Total reads made:` and `Total time run:`.
pub fn average_iops(output: &str) -> Option<f64> {
    if let Some(v) = field(output, "Average IOPS") {
        return Some(v);
    }
    let ops = field(output, "Total writes made").or_else(|| field(output, "Total reads made"))?;
    let secs = field(output, "Total time run")?;
    (secs > 0.0).then(|| ops / secs)
}

/// The number after `name:` on the first line that starts with `name`.
fn field(output: &str, name: &str) -> Option<f64> {
    output.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix(name)?.trim_start().strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tail of a real `rados bench 1 write -b 4096 -t 16` run (Ceph 16.2.15).
    const WRITE: &str = "\
    1      16      3998      3982   15.5535   15.5547  0.00360743  0.00400459
Total time run:         1.00161
Total writes made:      3998
Write size:             4096
Bandwidth (MB/sec):     15.5921
Average IOPS:           3991
Stddev IOPS:            0
Max IOPS:               3982
";

    #[test]
    fn reads_average_iops() {
        assert_eq!(average_iops(WRITE), Some(3991.0));
        let rand = "Total time run:       1.00043\nTotal reads made:     8106\nAverage IOPS:         8102\n";
        assert_eq!(average_iops(rand), Some(8102.0));
    }

    #[test]
    fn falls_back_to_totals_and_rejects_garbage() {
        let old = "Total time run:       2.0\nTotal reads made:     8000\n";
        assert_eq!(average_iops(old), Some(4000.0));
        assert_eq!(average_iops("error opening pool mail: (2) No such file or directory\n"), None);
        assert_eq!(average_iops("Average IOPS: nan-ish\n"), None);
    }
}
