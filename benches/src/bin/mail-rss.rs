//! Saves and fetches one very large mail (1 GiB by default) through rados-mail on a real
//! cluster and prints how much the process's resident memory grew: neither direction may
//! hold the mail in memory (the goal: under 64 MiB above the baseline).
//!
//! `source target/ceph/env.sh && cargo run --release -p rados-mail-benches --bin mail-rss`

use std::io::Read;
use std::time::Instant;

use clap::Parser;
use rados_mail::{Config, MailStore};
use rados_mail_benches::{Provenance, SplitMix64};

#[derive(Parser, Debug)]
#[command(about = "Peak RSS while saving and fetching one large mail through rados-mail")]
struct Args {
    /// Size of the mail in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Bytes per body object, in MiB (rados-mail's `chunk_size`).
    #[arg(long, default_value_t = 4)]
    chunk_mib: usize,
    /// Chunk objects written at once.
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
}

/// A deterministic mail of `len` bytes: a header, then lines of pseudo-random letters.
struct Generator {
    rng: SplitMix64,
    left: u64,
    pos: u64,
    header: Vec<u8>,
}

impl Generator {
    fn new(size: u64) -> Generator {
        Generator { rng: SplitMix64::new(7), left: size, pos: 0, header: b"Subject: big\n\n".to_vec() }
    }
}

impl Read for Generator {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = (out.len() as u64).min(self.left) as usize;
        for b in out[..n].iter_mut() {
            let at = self.pos;
            self.pos += 1;
            *b = if (at as usize) < self.header.len() {
                self.header[at as usize]
            } else if at % 78 == 77 {
                b'\n'
            } else {
                b'a' + (self.rng.next_u64() % 26) as u8
            };
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// (current RSS, peak RSS since the last reset), in KiB, from /proc.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak RSS (VmHWM) to the current RSS.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    let args = Args::parse();
    let size = args.size_mib << 20;
    let config = Config {
        max_mail_size: size + (1 << 20),
        chunk_size: args.chunk_mib << 20,
        write_in_flight: args.in_flight,
        ..Config::default()
    };
    let cluster = librados::ClusterConfig::from_env();
    let store = MailStore::connect(&cluster, config).unwrap_or_else(|e| {
        eprintln!(
            "mail-rss: cannot reach the cluster ({e}); start one with ./ci/ceph-start.sh && source target/ceph/env.sh"
        );
        std::process::exit(2);
    });
    let user = store.user(&format!("bench-rss-{}", std::process::id())).expect("user");
    user.create_mailbox("INBOX").expect("create");
    let inbox = user.open_mailbox("INBOX").expect("open");
    // Warm up: one small mail, so that connections and buffers exist before the baseline.
    inbox.append(&b"Subject: warm-up\n\n.\n"[..], Default::default()).expect("warm-up");

    let (baseline, _) = rss();
    reset_peak();
    let start = Instant::now();
    let generator = Generator::new(size);
    let uid = inbox.append(generator, Default::default()).expect("save");
    let save_time = start.elapsed();
    let (_, save_peak) = rss();

    reset_peak();
    let start = Instant::now();
    let mut reader = inbox.open_body(uid).expect("open body");
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    let mut check = Generator::new(size);
    let mut expected = vec![0u8; buf.len()];
    loop {
        let n = reader.read(&mut buf).expect("read (crc32 verified at the end)");
        if n == 0 {
            break;
        }
        check.read_exact(&mut expected[..n]).expect("generator");
        assert!(buf[..n] == expected[..n], "byte mismatch at offset {total}");
        total += n as u64;
    }
    let fetch_time = start.elapsed();
    let (_, fetch_peak) = rss();
    assert_eq!(total, size, "fetched size");
    inbox.expunge(&[uid]).expect("expunge");

    let mib = |kib: u64| kib as f64 / 1024.0;
    let rate = |secs: f64| (size as f64 / (1 << 20) as f64) / secs;
    println!("{}", Provenance::collect().to_markdown());
    println!(
        "- mail of {} MiB, chunk objects of {} MiB, {} written at once\n",
        args.size_mib, args.chunk_mib, args.in_flight
    );
    println!("| phase | MiB/s | peak RSS above baseline | goal |");
    println!("| --- | ---: | ---: | --- |");
    let save_growth = mib(save_peak.saturating_sub(baseline));
    let fetch_growth = mib(fetch_peak.saturating_sub(baseline));
    println!("| save (streamed in) | {:.0} | {:.1} MiB | < 64 MiB |", rate(save_time.as_secs_f64()), save_growth);
    println!(
        "| fetch (streamed out, crc32 verified) | {:.0} | {:.1} MiB | < 64 MiB |",
        rate(fetch_time.as_secs_f64()),
        fetch_growth
    );
    println!(
        "\nbaseline RSS {:.1} MiB; the mail is {:.0}× the larger growth",
        mib(baseline),
        args.size_mib as f64 / save_growth.max(fetch_growth).max(0.1)
    );
    if save_growth >= 64.0 || fetch_growth >= 64.0 {
        eprintln!("mail-rss: memory grew by 64 MiB or more");
        std::process::exit(1);
    }
}
