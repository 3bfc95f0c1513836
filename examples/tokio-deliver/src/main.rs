//! A tokio program on rados-mail's async API, as another Rust mail server would use it:
//! connects to the local Ceph cluster (`CEPH_CONF`, `RADOS_MAIL_POOL`, ... from the
//! environment, as the `rados-mail` CLI does), delivers a few mails to a new user's INBOX
//! streaming each body in pieces (one of them larger than a chunk object), fetches them
//! back as streams, checks every byte, prints a short summary, and deletes what it made.
//!
//! ```text
//! source target/ceph/env.sh
//! cargo run -p rados-mail-example-tokio
//! ```

use std::process::ExitCode;
use std::time::Instant;

use futures::StreamExt;
use rados_mail::asynchronous::AsyncMailStore;
use rados_mail::{AppendOptions, Config, DeliveryKey, MailStore};

/// A mail of about `len` bytes: a header, then numbered lines.
fn mail(n: usize, len: usize) -> Vec<u8> {
    let mut m = format!("From: example@localhost\r\nSubject: tokio example {n}\r\n\r\n").into_bytes();
    let mut line = 0;
    while m.len() < len {
        m.extend_from_slice(format!("line {line} of mail {n}\r\n").as_bytes());
        line += 1;
    }
    m
}

async fn run() -> rados_mail::Result<()> {
    // Small chunks, so that the big mail spans several objects written concurrently.
    let config = Config { chunk_size: 256 << 10, ..Config::default() };
    let store = MailStore::connect(&librados::ClusterConfig::from_env(), config)?;
    let store = AsyncMailStore::new(store);
    let name = format!("tokio-example-{}", std::process::id());
    let user = store.user(&name).await?;
    user.create_mailbox("INBOX").await?;
    let inbox = user.open_mailbox("INBOX").await?;

    let mails: Vec<Vec<u8>> =
        [300, 5_000, 1_000_000, 40_000].iter().enumerate().map(|(n, len)| mail(n, *len)).collect();
    let started = Instant::now();
    let mut uids = Vec::new();
    for body in &mails {
        // Streamed in 8 KiB pieces, as they would come off an SMTP/LMTP connection.
        let pieces = body.chunks(8 << 10).map(|p| Ok::<_, std::io::Error>(p.to_vec())).collect::<Vec<_>>();
        let options = AppendOptions { delivery: Some(DeliveryKey::of_message(body)), ..Default::default() };
        uids.push(inbox.append_stream(futures::stream::iter(pieces), options).await?);
    }
    let delivered = started.elapsed();

    let started = Instant::now();
    let mut bytes = 0;
    for (uid, body) in uids.iter().zip(&mails) {
        let mut stream = inbox.body_stream(*uid).await?;
        let mut back = Vec::with_capacity(body.len());
        while let Some(piece) = stream.next().await {
            back.extend_from_slice(&piece?);
        }
        if &back != body {
            return Err(rados_mail::Error::Input(format!("UID {uid}: the bytes fetched differ from those delivered")));
        }
        bytes += back.len();
    }
    let fetched = started.elapsed();
    let status = inbox.status().await?;
    println!(
        "tokio example: delivered {} mails ({bytes} bytes) to {name}/INBOX in {:.1} ms (UIDs {uids:?}), \
         fetched and checked them in {:.1} ms; the mailbox holds {} mails, HIGHESTMODSEQ {}",
        mails.len(),
        delivered.as_secs_f64() * 1000.0,
        fetched.as_secs_f64() * 1000.0,
        status.messages,
        status.highestmodseq,
    );
    user.delete_mailbox("INBOX").await?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio example: {e}");
            ExitCode::FAILURE
        }
    }
}
