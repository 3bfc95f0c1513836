//! `async-bench`: rados-mail's native async append and fetch on tokio tasks against the
//! blocking API on threads, at the same concurrency (16 in flight by default).
//!
//! Each of the `concurrency` workers (a thread, or a task) appends `mails` mails of `size`
//! bytes to a mailbox of its own, then fetches each of them back whole; a run measures
//! appends/s and fetches/s. Modes:
//!
//! * `threads`: the blocking API ([`rados_mail::Mailbox`]), one OS thread per worker;
//! * `tokio current-thread`: [`rados_mail::asynchronous`], one task per worker, on a
//!   single-threaded runtime;
//! * `tokio multi-thread`: the same on a runtime with one worker thread per CPU.
//!
//! On the in-memory backend, and on the cluster `CEPH_CONF` / `RADOS_MAIL_POOL` name (skip
//! it with `--memory-only`). The body cache is off, so fetches read RADOS. The table goes
//! to stdout, naming the machine and the commit; timings are printed, never asserted.
//!
//! `source target/ceph/env.sh && cargo run --release -p rados-mail-benches --bin async-bench`

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rados_mail::asynchronous::AsyncMailStore;
use rados_mail::{AppendOptions, Config, MailStore};
use rados_mail_benches::Provenance;
use rados_mail_benches::report::thousands;

/// Measures async tasks against threads at equal concurrency (appends/s, fetches/s).
#[derive(Debug, Parser)]
#[command(name = "async-bench", version)]
struct Args {
    /// Workers (threads, or tasks) appending and fetching at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Mails per worker.
    #[arg(long, default_value_t = 200)]
    mails: usize,
    /// Bytes per mail.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// A short run for CI: 20 mails per worker.
    #[arg(long)]
    quick: bool,
    /// Only the in-memory backend (no cluster needed).
    #[arg(long)]
    memory_only: bool,
}

/// One mode's figures.
struct Figures {
    appends: f64,
    fetches: f64,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Threads,
    CurrentThread,
    MultiThread,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Threads => "threads (blocking API)",
            Mode::CurrentThread => "tokio tasks, current-thread",
            Mode::MultiThread => "tokio tasks, multi-thread",
        }
    }
}

fn mail(size: usize, worker: usize, i: usize) -> Vec<u8> {
    let mut m = format!("Subject: bench {worker} {i}\r\n\r\n").into_bytes();
    m.resize(size.max(m.len()), b'x');
    m
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// The blocking API, one thread per worker.
fn run_threads(store: &MailStore, user: &str, args: &Args) -> Result<Figures, rados_mail::Error> {
    let u = store.user(user)?;
    let boxes: Vec<_> = (0..args.concurrency)
        .map(|w| {
            u.create_mailbox(&format!("w{w}"))?;
            u.open_mailbox(&format!("w{w}"))
        })
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = boxes
            .iter()
            .enumerate()
            .map(|(w, m)| {
                s.spawn(move || -> Result<(), rados_mail::Error> {
                    for i in 0..args.mails {
                        m.append(&mail(args.size, w, i)[..], AppendOptions::default())?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().expect("no panic"))
    })?;
    let appends = rate(args.concurrency * args.mails, t.elapsed());
    let t = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = boxes
            .iter()
            .enumerate()
            .map(|(w, m)| {
                s.spawn(move || -> Result<(), rados_mail::Error> {
                    for uid in 1..=args.mails as u32 {
                        let mut out = Vec::new();
                        m.open_body(uid)?.read_to_end(&mut out).map_err(|e| rados_mail::Error::Input(e.to_string()))?;
                        assert_eq!(out, mail(args.size, w, uid as usize - 1));
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().expect("no panic"))
    })?;
    let fetches = rate(args.concurrency * args.mails, t.elapsed());
    for w in 0..args.concurrency {
        u.delete_mailbox(&format!("w{w}"))?;
    }
    Ok(Figures { appends, fetches })
}

/// The async API, one task per worker.
async fn run_tasks(store: &MailStore, user: &str, args: Arc<Args>) -> Result<Figures, rados_mail::Error> {
    let u = AsyncMailStore::new(store.clone()).user(user).await?;
    let mut boxes = Vec::new();
    for w in 0..args.concurrency {
        u.create_mailbox(&format!("w{w}")).await?;
        boxes.push(u.open_mailbox(&format!("w{w}")).await?);
    }
    let t = Instant::now();
    let tasks: Vec<_> = boxes
        .iter()
        .enumerate()
        .map(|(w, m)| {
            let (m, args) = (m.clone(), args.clone());
            tokio::spawn(async move {
                for i in 0..args.mails {
                    m.append(mail(args.size, w, i), AppendOptions::default()).await?;
                }
                Ok::<_, rados_mail::Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("no panic")?;
    }
    let appends = rate(args.concurrency * args.mails, t.elapsed());
    let t = Instant::now();
    let tasks: Vec<_> = boxes
        .iter()
        .enumerate()
        .map(|(w, m)| {
            let (m, args) = (m.clone(), args.clone());
            tokio::spawn(async move {
                for uid in 1..=args.mails as u32 {
                    assert_eq!(m.body(uid).await?, mail(args.size, w, uid as usize - 1));
                }
                Ok::<_, rados_mail::Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("no panic")?;
    }
    let fetches = rate(args.concurrency * args.mails, t.elapsed());
    for w in 0..args.concurrency {
        u.delete_mailbox(&format!("w{w}")).await?;
    }
    Ok(Figures { appends, fetches })
}

fn run(mode: Mode, store: &MailStore, user: &str, args: &Arc<Args>) -> Result<Figures, rados_mail::Error> {
    match mode {
        Mode::Threads => run_threads(store, user, args),
        Mode::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
            .block_on(run_tasks(store, user, args.clone())),
        Mode::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .enable_time()
            .build()
            .expect("a runtime")
            .block_on(run_tasks(store, user, args.clone())),
    }
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    if args.quick {
        args.mails = 20;
    }
    let args = Arc::new(args);
    let mut config = Config::default();
    // Fetches read RADOS, not the process's body cache.
    config.cache.memory_bytes = 0;
    let mut backends = vec![("memory", MailStore::in_memory(config.clone()))];
    if !args.memory_only {
        if std::env::var_os("CEPH_CONF").is_none() {
            eprintln!("async-bench: CEPH_CONF is unset (source target/ceph/env.sh), or pass --memory-only");
            return ExitCode::FAILURE;
        }
        match MailStore::connect(&librados::ClusterConfig::from_env(), config) {
            Ok(s) => backends.push(("cluster", s)),
            Err(e) => {
                eprintln!("async-bench: cannot reach the cluster: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("{}", Provenance::collect().to_markdown());
    println!(
        "{} workers in flight, {} mails of {} bytes each per worker, body cache off.\n",
        args.concurrency, args.mails, args.size
    );
    println!("| backend | mode | appends/s | × threads | fetches/s | × threads |");
    println!("|---|---|---:|---:|---:|---:|");
    let pid = std::process::id();
    for (backend, store) in &backends {
        let mut base: Option<Figures> = None;
        for mode in [Mode::Threads, Mode::CurrentThread, Mode::MultiThread] {
            eprintln!("async-bench: {backend}, {}", mode.name());
            let user = format!("async-bench-{pid}-{}", mode as u8);
            let f = match run(mode, store, &user, &args) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("async-bench: {backend}, {}: {e}", mode.name());
                    return ExitCode::FAILURE;
                }
            };
            let (ra, rf) = match &base {
                Some(b) => (format!("{:.2}", f.appends / b.appends), format!("{:.2}", f.fetches / b.fetches)),
                None => ("1.00".into(), "1.00".into()),
            };
            println!(
                "| {backend} | {} | {} | {ra} | {} | {rf} |",
                mode.name(),
                thousands(f.appends),
                thousands(f.fetches)
            );
            if mode == Mode::Threads {
                base = Some(f);
            }
        }
    }
    ExitCode::SUCCESS
}
