//! Native async append: the body written with async writes (chunks in flight with a
//! bound), then the commit as one async guarded write of the mailbox head.

use std::future::poll_fn;
use std::pin::pin;
use std::task::Poll;

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, ReadBuf};

use super::AsyncMailbox;
use crate::body::BodyWriter;
use crate::error::{Error, Result};
use crate::mailbox::{ModseqSteps, Transaction};
use crate::types::AppendOptions;

/// Bytes asked of an [`AsyncRead`] at a time.
const READ_BUF: usize = 64 * 1024;

impl AsyncMailbox {
    /// Appends one mail held in memory; returns its UID. See [`AsyncMailbox::append_reader`].
    pub async fn append(&self, body: Vec<u8>, options: AppendOptions) -> Result<u32> {
        self.append_reader(&body[..], options).await
    }

    /// Appends one mail streamed from `body`; returns its UID. The same objects, keys and
    /// guards as [`crate::Mailbox::append`], written with async operations:
    ///
    /// - the body goes to RADOS one `chunk_size` chunk at a time as it arrives; while
    ///   `write_in_flight` chunks are in flight, `body` is not read (backpressure: at most
    ///   `write_in_flight + 1` chunks are held in memory);
    /// - the commit is one async guarded write of the mailbox head. A lost race (another
    ///   writer committed first), a commit on a view that lost a race lately, and a lost
    ///   reply are finished by the blocking path on tokio's blocking pool, under the same
    ///   retry policy (see `mailbox/aio.rs`).
    ///
    /// Dropping the future before it completes leaves no visible mail: what was written is
    /// removed (a write already sent may leave an orphan object, which `check` reports
    /// and `repair` removes), and a commit already sent either landed (the mail is there)
    /// or not.
    pub async fn append_reader(&self, body: impl AsyncRead + Send, options: AppendOptions) -> Result<u32> {
        self.0.check_append_options(&options)?;
        let mut body = pin!(body);
        let mut writer = self.0.body_writer(options.received);
        let mut buf = vec![0u8; READ_BUF];
        loop {
            let read = poll_fn(|cx| {
                let mut rb = ReadBuf::new(&mut buf);
                match body.as_mut().poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            match read {
                Ok(0) => break,
                Ok(n) => writer.write_async(&buf[..n]).await?,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(abort(writer, Error::Input(e.to_string())).await),
            }
        }
        self.commit_body(writer, options).await
    }

    /// Appends one mail streamed as a [`Stream`] of pieces (`Bytes`, `Vec<u8>`, ...);
    /// returns its UID. As [`AsyncMailbox::append_reader`]: the stream is not polled while
    /// `write_in_flight` chunks are in flight. An `Err` item fails the append
    /// ([`Error::Input`]) and removes what was written.
    pub async fn append_stream<S, B>(&self, body: S, options: AppendOptions) -> Result<u32>
    where
        S: Stream<Item = std::io::Result<B>> + Send,
        B: AsRef<[u8]> + Send,
    {
        self.0.check_append_options(&options)?;
        let mut body = pin!(body);
        let mut writer = self.0.body_writer(options.received);
        while let Some(piece) = body.next().await {
            match piece {
                Ok(piece) => writer.write_async(piece.as_ref()).await?,
                Err(e) => return Err(abort(writer, Error::Input(e.to_string())).await),
            }
        }
        self.commit_body(writer, options).await
    }

    /// Finishes the body and commits it as a new mail.
    async fn commit_body(&self, writer: BodyWriter, options: AppendOptions) -> Result<u32> {
        let saved = writer.finish_async().await?;
        let mut txn = Transaction::new(ModseqSteps::One);
        txn.save(self.0.saved_mail(saved), options)?;
        Ok(self.0.commit_new_async(txn).await?.saved[0])
    }
}

/// Removes what `writer` wrote and returns `e`.
async fn abort(mut writer: BodyWriter, e: Error) -> Error {
    writer.abort_async(None).await;
    e
}
