//! Where a benchmark result was measured: machine, commit, date, Ceph version.

use std::path::Path;
use std::process::Command;

/// The facts a results table must name so that numbers from different runs can be compared
/// (or rather, so that nobody compares numbers that cannot be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// Logical CPUs available to this process.
    pub cpus: usize,
    /// CPU model, from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Total memory, from `/proc/meminfo`, like `"23.4 GiB"`.
    pub memory: String,
    /// Kernel release, from `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    /// Short commit of the workspace, with `+dirty` when tracked files have uncommitted
    /// changes; `"unknown"` outside a git checkout.
    pub commit: String,
    /// When the run happened (UTC).
    pub date: String,
    /// `ceph --version`, shortened; `"unknown"` when the tool is missing.
    pub ceph_version: String,
}

impl Provenance {
    /// Gathers everything from the running system. Never fails: what cannot be found reads
    /// `"unknown"`.
    pub fn collect() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
        let repo = repo.to_string_lossy();
        let commit = match run("git", &["-C", &repo, "rev-parse", "--short", "HEAD"]) {
            Some(c) => match run("git", &["-C", &repo, "status", "--porcelain", "--untracked-files=no"]) {
                Some(s) if !s.is_empty() => format!("{c}+dirty"),
                _ => c,
            },
            None => "unknown".into(),
        };
        Provenance {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: cpu_model(&read("/proc/cpuinfo")).unwrap_or_else(unknown),
            memory: mem_total_kib(&read("/proc/meminfo")).map_or_else(unknown, |kib| gib(kib * 1024)),
            kernel: Some(read("/proc/sys/kernel/osrelease").trim().to_string())
                .filter(|k| !k.is_empty())
                .unwrap_or_else(unknown),
            commit,
            date: run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(unknown),
            ceph_version: run("ceph", &["--version"]).map_or_else(unknown, |v| short_ceph_version(&v)),
        }
    }

    /// The facts as a markdown bullet list, one line each.
    pub fn to_markdown(&self) -> String {
        format!(
            "- machine: {} CPUs ({}), {} RAM, Linux {}\n- commit: {}\n- date: {}\n- ceph: {}\n",
            self.cpus, self.cpu_model, self.memory, self.kernel, self.commit, self.date, self.ceph_version
        )
    }
}

fn unknown() -> String {
    "unknown".into()
}

/// Stdout of a command that succeeded, trimmed; `None` if it failed or printed nothing.
fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The first `model name` of `/proc/cpuinfo` (x86) or, failing that, its `Model`/`Hardware`
/// line (some ARM kernels), with runs of spaces collapsed.
pub(crate) fn cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Model", "Hardware"].iter().find_map(|field| {
        cpuinfo.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name.trim() == *field && !value.trim().is_empty())
                .then(|| value.split_whitespace().collect::<Vec<_>>().join(" "))
        })
    })
}

/// `MemTotal` of `/proc/meminfo`, in KiB.
pub(crate) fn mem_total_kib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// `ceph version 16.2.15 (618f44…) pacific (stable)` → `16.2.15 pacific (stable)`.
pub(crate) fn short_ceph_version(v: &str) -> String {
    let v = v.trim().strip_prefix("ceph version ").unwrap_or(v.trim());
    let words: Vec<&str> = v.split_whitespace().filter(|w| !(w.starts_with('(') && w.len() > 30)).collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_model_and_memory() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\n\
                       model name\t: Intel(R) Xeon(R)   CPU @ 2.00GHz\nprocessor\t: 1\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("Intel(R) Xeon(R) CPU @ 2.00GHz"));
        assert_eq!(cpu_model("processor : 0\nModel : Raspberry Pi 4\n").as_deref(), Some("Raspberry Pi 4"));
        assert_eq!(cpu_model("processor : 0\n"), None);
        assert_eq!(mem_total_kib("MemTotal:       24542412 kB\nMemFree: 1 kB\n"), Some(24_542_412));
        assert_eq!(mem_total_kib("MemFree: 1 kB\n"), None);
        assert_eq!(gib(24_542_412 * 1024), "23.4 GiB");
    }

    #[test]
    fn shortens_ceph_version() {
        let v = "ceph version 16.2.15 (618f440892089921c3e944a991122ddc44e60516) pacific (stable)\n";
        assert_eq!(short_ceph_version(v), "16.2.15 pacific (stable)");
    }
}
