//! Watch and notify on RADOS objects.
//!
//! A watch is `rados_watch2` with a callback context ([`WatchCtx`]) leaked to librados as
//! the callbacks' argument. Notifies are acknowledged (`rados_notify_ack`) from the
//! callback, before the user's callback runs, so the notifier is never kept waiting. The
//! context outlives the watch: dropping the handle marks it gone (waiting for a callback in
//! progress), then a thread of ours unwatches (`rados_unwatch2`), waits until librados has
//! run every queued callback (`rados_watch_flush`), and only then frees the context. So
//! dropping a handle never blocks on the cluster, and no callback ever sees freed memory.
//!
//! A notify is `rados_aio_notify` with [`NOTIFY_TIMEOUT`]: submitted, never waited for. Its
//! completion frees the reply buffer, tells the caller's hook the outcome, and hands its
//! references to the reaper (a librados thread must never drop the last reference of an
//! I/O context).

use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use librados_sys as sys;
use objstore::{Error, NotifyDone, Result, WatchCallback, WatchEvent, WatchHandle, check_oid, watch_broken};

use crate::aio::reap;
use crate::cluster::IoCtx;
use crate::errno::{GuardKinds, cstring, op_result, slice};
use crate::quiesce::Busy;

/// How long a notify waits for the watchers' acknowledgements before it completes with
/// `Unavailable` (the caller does not wait either way; this bounds the notify's memory).
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// Notifies in flight per connection beyond which a new one fails at once.
const MAX_NOTIFIES_IN_FLIGHT: usize = 4096;

/// What the callbacks of one watch see.
struct WatchCtx {
    io: Arc<IoCtx>,
    oid: String,
    oid_c: CString,
    callback: WatchCallback,
    /// False once unwatched or broken. Held while the user's callback runs.
    live: Mutex<bool>,
    /// Set when the error callback fired.
    broken: AtomicBool,
}

impl WatchCtx {
    fn deliver(&self, event: WatchEvent) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if !*live {
            return;
        }
        if matches!(event, WatchEvent::Error(_)) {
            *live = false;
        }
        // A panic must not cross into librados; the event is lost then, nothing else.
        if catch_unwind(AssertUnwindSafe(|| (self.callback)(event))).is_err() {
            tracing::error!(oid = %self.oid, "a watch callback panicked");
        }
    }
}

/// A registered watch; dropping it unwatches.
pub(crate) struct RadosWatch {
    /// One more reference is leaked to librados as the callbacks' argument (the same
    /// pointer, `Arc::as_ptr`); reclaimed after unwatch and flush.
    ctx: Arc<WatchCtx>,
    cookie: u64,
}

impl std::fmt::Debug for RadosWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RadosWatch").field("oid", &self.ctx.oid).field("cookie", &self.cookie).finish()
    }
}

extern "C" fn on_notify(
    arg: *mut c_void,
    notify_id: u64,
    cookie: u64,
    _notifier: u64,
    data: *mut c_void,
    data_len: usize,
) {
    // SAFETY: `arg` is the context leaked by `watch`, freed only after this watch was
    // unwatched and librados' callback queue flushed, so it is alive during any callback.
    let ctx = unsafe { &*(arg as *const WatchCtx) };
    // SAFETY: librados passes `data_len` readable bytes, valid during the callback.
    let payload = unsafe { slice(data as *const u8, data_len) }.to_vec();
    // SAFETY: live I/O context (the context holds it), NUL-terminated name; an empty reply.
    // The ack is queued, not waited for.
    unsafe { sys::rados_notify_ack(ctx.io.handle, ctx.oid_c.as_ptr(), notify_id, cookie, ptr::null(), 0) };
    ctx.deliver(WatchEvent::Notify(payload));
}

extern "C" fn on_error(arg: *mut c_void, _cookie: u64, err: c_int) {
    // SAFETY: as in `on_notify`.
    let ctx = unsafe { &*(arg as *const WatchCtx) };
    ctx.broken.store(true, Ordering::SeqCst);
    let error = match -err {
        libc::ENOENT => Error::NotFound { object: ctx.oid.clone() },
        errno => watch_broken(&ctx.oid, &std::io::Error::from_raw_os_error(errno).to_string()),
    };
    ctx.deliver(WatchEvent::Error(error));
}

/// Watches `oid` through `io`.
pub(crate) fn watch(io: &Arc<IoCtx>, oid: &str, callback: WatchCallback) -> Result<RadosWatch> {
    check_oid(oid)?;
    let ctx = Arc::new(WatchCtx {
        io: io.clone(),
        oid: oid.to_string(),
        oid_c: cstring("object name", oid)?,
        callback,
        live: Mutex::new(true),
        broken: AtomicBool::new(false),
    });
    let arg = Arc::into_raw(ctx.clone()) as *mut c_void;
    let mut cookie = 0u64;
    // SAFETY: live I/O context, NUL-terminated name, valid out-pointer; `arg` stays valid
    // until after unwatch and flush (see `Drop`).
    let rc =
        unsafe { sys::rados_watch2(io.handle, ctx.oid_c.as_ptr(), &mut cookie, Some(on_notify), Some(on_error), arg) };
    if rc < 0 {
        // SAFETY: no watch was registered, so no callback can hold `arg`: reclaim it.
        drop(unsafe { Arc::from_raw(arg as *const WatchCtx) });
        op_result(rc, oid, GuardKinds::default(), "watch")?;
    }
    Ok(RadosWatch { ctx, cookie })
}

impl WatchHandle for RadosWatch {
    fn oid(&self) -> &str {
        &self.ctx.oid
    }

    fn check(&self) -> Result<()> {
        if self.ctx.broken.load(Ordering::SeqCst) {
            return Err(watch_broken(&self.ctx.oid, "reported by librados"));
        }
        // SAFETY: live I/O context and a cookie of a watch not yet unwatched.
        let rc = unsafe { sys::rados_watch_check(self.ctx.io.handle, self.cookie) };
        match rc {
            0.. => Ok(()),
            _ => Err(watch_broken(&self.ctx.oid, &std::io::Error::from_raw_os_error(-rc).to_string())),
        }
    }
}

impl Drop for RadosWatch {
    fn drop(&mut self) {
        // Waits for a callback in progress; none reaches the user afterwards.
        *self.ctx.live.lock().unwrap_or_else(|e| e.into_inner()) = false;
        unwatcher(Unwatch { ctx: self.ctx.clone(), cookie: self.cookie, _busy: Busy::new() });
    }
}

/// A watch to unregister, on the unwatcher thread.
struct Unwatch {
    ctx: Arc<WatchCtx>,
    cookie: u64,
    /// Last field: released after `ctx`, which may hold the cluster's last reference.
    _busy: Busy,
}

impl Unwatch {
    fn run(self) {
        let io = &self.ctx.io;
        // SAFETY: a cookie of this I/O context's watch, unwatched exactly once. A broken
        // watch must be unwatched too; its error is of no interest then.
        let rc = unsafe { sys::rados_unwatch2(io.handle, self.cookie) };
        if rc < 0 && !self.ctx.broken.load(Ordering::SeqCst) {
            tracing::debug!(oid = %self.ctx.oid, "rados_unwatch2: {}", std::io::Error::from_raw_os_error(-rc));
        }
        // SAFETY: connected cluster; not a librados thread, so waiting for its callback
        // queue cannot deadlock.
        unsafe { sys::rados_watch_flush(io.cluster().handle) };
        // SAFETY: unwatched and flushed: librados holds the leaked reference no more.
        drop(unsafe { Arc::from_raw(Arc::as_ptr(&self.ctx)) });
    }
}

/// Hands `job` to the unwatcher thread (started by the first unwatch of the process).
fn unwatcher(job: Unwatch) {
    static UNWATCHER: OnceLock<Mutex<mpsc::Sender<Unwatch>>> = OnceLock::new();
    let tx = UNWATCHER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Unwatch>();
        std::thread::Builder::new()
            .name("rados-unwatch".into())
            .spawn(move || rx.into_iter().for_each(Unwatch::run))
            .expect("spawning the rados-unwatch thread");
        Mutex::new(tx)
    });
    if let Err(mpsc::SendError(job)) = tx.lock().unwrap_or_else(|e| e.into_inner()).send(job) {
        // Process exiting: leaking the watch is the safe choice.
        let Unwatch { ctx, _busy, .. } = job;
        std::mem::forget(ctx);
    }
}

/// One notify in flight. Its fields are written by librados until the completion fires.
struct NotifyPending {
    completion: AtomicPtr<c_void>,
    reply: Box<(*mut c_char, usize)>,
    done: Option<NotifyDone>,
    io: Arc<IoCtx>,
    oid: String,
    /// Last field: released after `io`, which may hold the cluster's last reference.
    _busy: Busy,
}

// SAFETY: the reply pointers are written by librados before the completion fires and read
// (to free the buffer) only afterwards, by whoever drops the box: never concurrently.
unsafe impl Send for NotifyPending {}

impl Drop for NotifyPending {
    fn drop(&mut self) {
        let c = *self.completion.get_mut();
        // SAFETY: the operation completed (or was never submitted): librados no longer
        // writes the reply pointers, and the completion is released exactly once.
        unsafe {
            if !self.reply.0.is_null() {
                sys::rados_buffer_free(self.reply.0);
            }
            if !c.is_null() {
                sys::rados_aio_release(c);
            }
        }
        self.io.cluster().notifies.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The notify's completion: tells the hook, then lets the reaper free the rest.
extern "C" fn on_notify_complete(c: sys::rados_completion_t, arg: *mut c_void) {
    // SAFETY: `arg` is the box leaked by `notify`, reclaimed exactly once, here.
    let mut pending = unsafe { Box::from_raw(arg as *mut NotifyPending) };
    // SAFETY: the completion has completed.
    let rc = unsafe { sys::rados_aio_get_return_value(c) };
    if let Some(done) = pending.done.take() {
        let outcome = notify_result(rc, &pending.oid);
        if catch_unwind(AssertUnwindSafe(|| done(outcome))).is_err() {
            tracing::error!(oid = %pending.oid, "a notify hook panicked");
        }
    }
    reap(pending);
}

fn notify_result(rc: c_int, oid: &str) -> Result<()> {
    if rc == -libc::ETIMEDOUT {
        return Err(Error::Unavailable(format!("notify on {oid:?}: not every watcher acknowledged in time")));
    }
    op_result(rc, oid, GuardKinds::default(), "notify")
}

/// Sends a notify on `oid` through `io`, without waiting.
pub(crate) fn notify(io: &Arc<IoCtx>, oid: &str, payload: &[u8], done: Option<NotifyDone>) {
    let fail = |done: Option<NotifyDone>, e: Error| {
        if let Some(done) = done {
            done(Err(e));
        }
    };
    if let Err(e) = check_oid(oid) {
        return fail(done, e);
    }
    let Ok(len) = c_int::try_from(payload.len()) else {
        return fail(done, Error::TooLarge(format!("notify payload of {} bytes", payload.len())));
    };
    let oid_c = match cstring("object name", oid) {
        Ok(c) => c,
        Err(e) => return fail(done, e),
    };
    if io.cluster().notifies.fetch_add(1, Ordering::SeqCst) >= MAX_NOTIFIES_IN_FLIGHT {
        io.cluster().notifies.fetch_sub(1, Ordering::SeqCst);
        return fail(done, Error::Unavailable(format!("notify on {oid:?}: too many notifies in flight")));
    }
    let pending = Box::new(NotifyPending {
        completion: AtomicPtr::new(ptr::null_mut()),
        reply: Box::new((ptr::null_mut(), 0)),
        done,
        io: io.clone(),
        oid: oid.to_string(),
        _busy: Busy::new(),
    });
    let reply: *mut (*mut c_char, usize) = &*pending.reply as *const _ as *mut _;
    let arg = Box::into_raw(pending);
    let mut c: sys::rados_completion_t = ptr::null_mut();
    // SAFETY: valid out-pointer; `arg` stays valid until the callback reclaims it.
    let rc = unsafe { sys::rados_aio_create_completion2(arg.cast(), Some(on_notify_complete), &mut c) };
    if rc < 0 {
        // SAFETY: no completion, so no callback: reclaim here.
        let mut pending = unsafe { Box::from_raw(arg) };
        let done = pending.done.take();
        return fail(done, notify_result(rc, oid).unwrap_err());
    }
    // SAFETY: `arg` is live (the callback cannot run before the notify is submitted).
    unsafe { (*arg).completion.store(c, Ordering::Release) };
    let timeout_ms = NOTIFY_TIMEOUT.as_millis() as u64;
    // SAFETY: live I/O context, NUL-terminated name, `len` payload bytes (copied by
    // librados), completion; the reply pointers live in the heap box until the completion
    // fired, and the completion frees the buffer.
    let rc = unsafe {
        sys::rados_aio_notify(
            io.handle,
            oid_c.as_ptr(),
            c,
            payload.as_ptr().cast(),
            len,
            timeout_ms,
            &mut (*reply).0,
            &mut (*reply).1,
        )
    };
    if rc < 0 {
        // SAFETY: refused before submission: the callback never runs; reclaim.
        let mut pending = unsafe { Box::from_raw(arg) };
        let done = pending.done.take();
        fail(done, notify_result(rc, oid).unwrap_err());
    }
}
