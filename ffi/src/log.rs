//! `rm_log_*`: the library's `tracing` events, handed to a C callback.
//!
//! The library logs with `tracing` (warnings about damaged records, the body cache, the
//! watch threads, ...). Without a subscriber those events go nowhere; [`rm_log_set_handler`]
//! installs one (a small hand-written [`tracing::Subscriber`]: formatting an event with its
//! fields and checking a level is all it needs, so no `tracing-subscriber` dependency) that
//! passes each event's level and formatted message to a C callback.
//!
//! Threads: callers such as Dovecot are single-threaded and not thread-safe, but library
//! events also happen on librados, tokio and helper threads. The callback is therefore only
//! ever called on the thread that registered it (the "owner"), and never re-entered:
//! - an event on the owner thread, outside the callback, is delivered at once (after the
//!   queued ones, so the order of delivery is the order of queueing);
//! - an event on another thread (or raised from inside the callback) is queued, at most
//!   [`RM_LOG_QUEUE_CAPACITY`] of them; beyond that it is counted as dropped;
//! - the queue is delivered on the owner thread when any export returns, or by
//!   [`rm_log_flush`]; dropped events are reported then as one warning with their count.

use std::cell::Cell;
use std::collections::VecDeque;
use std::ffi::{CString, c_char, c_void};
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

use crate::error::{Failure, rm_result};
use crate::panic::{ffi_boundary, ffi_call};

/// Events queued (from other threads) beyond this many are dropped and counted.
pub const RM_LOG_QUEUE_CAPACITY: usize = 1024;

/// The level of a log event, and the most verbose level a handler wants.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum rm_log_level {
    /// No events (as a wanted level); never passed to a callback.
    Off = 0,
    /// Errors: something is wrong and was not (fully) handled.
    Error = 1,
    /// Warnings: something is wrong and was worked around (a damaged record skipped, ...).
    Warn = 2,
    /// Information.
    Info = 3,
    /// Debugging detail.
    Debug = 4,
    /// Very verbose debugging detail.
    Trace = 5,
}

impl rm_log_level {
    fn of(level: &Level) -> rm_log_level {
        match *level {
            Level::ERROR => rm_log_level::Error,
            Level::WARN => rm_log_level::Warn,
            Level::INFO => rm_log_level::Info,
            Level::DEBUG => rm_log_level::Debug,
            Level::TRACE => rm_log_level::Trace,
        }
    }
}

/// The callback of [`rm_log_set_handler`]: `userdata` as registered, the event's level,
/// and its message (NUL-terminated, `len` bytes without the NUL, valid during the call
/// only): the event's message followed by its fields as ` key=value`.
pub type rm_log_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, level: rm_log_level, message: *const c_char, len: usize)>;

/// The registered callback.
#[derive(Clone, Copy)]
struct Handler {
    cb: unsafe extern "C" fn(*mut c_void, rm_log_level, *const c_char, usize),
    userdata: *mut c_void,
}

// SAFETY: the callback and its userdata are only ever used on the owner thread (see the
// module documentation); other threads only see whether a handler is set.
unsafe impl Send for Handler {}

/// The registered callback, if any.
static HANDLER: Mutex<Option<Handler>> = Mutex::new(None);
/// The most verbose level wanted, as `rm_log_level as u8` (0: none).
static LEVEL: AtomicU8 = AtomicU8::new(0);
/// Which registration is current: the owner thread holds the same number in `OWNER_OF`.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Events waiting for the owner thread.
static QUEUE: Mutex<VecDeque<(rm_log_level, String)>> = Mutex::new(VecDeque::new());
/// `QUEUE.len()`, readable without the lock (the check on every export's return).
static QUEUED: AtomicUsize = AtomicUsize::new(0);
/// Events dropped because the queue was full, not yet reported.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Span ids handed out (spans are not recorded, but each needs a distinct non-zero id).
static NEXT_SPAN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The registration this thread owns (0: none).
    static OWNER_OF: Cell<u64> = const { Cell::new(0) };
    /// Whether this thread is inside the callback now.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing that holds these locks can panic half-way (push/pop/take).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// True on the owner thread while it is not inside the callback.
fn may_call_here() -> bool {
    let generation = GENERATION.load(Ordering::SeqCst);
    generation != 0
        && OWNER_OF.try_with(Cell::get).is_ok_and(|g| g == generation)
        && IN_CALLBACK.try_with(Cell::get).is_ok_and(|inside| !inside)
}

/// Calls the callback (on the owner thread, not re-entered: checked by the caller).
fn call(handler: Handler, level: rm_log_level, message: &str) {
    // A message with a NUL (from a field's Debug output, say) is cut there.
    let message = message.split('\0').next().unwrap_or_default();
    let Ok(text) = CString::new(message) else { return };
    IN_CALLBACK.with(|c| c.set(true));
    // SAFETY: the callback was registered by C for exactly this use; `text` outlives the
    // call. A C function does not unwind.
    unsafe { (handler.cb)(handler.userdata, level, text.as_ptr(), text.as_bytes().len()) };
    IN_CALLBACK.with(|c| c.set(false));
}

/// Delivers the queued events (and the count of dropped ones) if this thread may call the
/// callback; returns how many events were delivered.
pub(crate) fn deliver_queued() -> usize {
    if QUEUED.load(Ordering::SeqCst) == 0 && DROPPED.load(Ordering::SeqCst) == 0 {
        return 0;
    }
    if !may_call_here() {
        return 0;
    }
    let Some(handler) = *lock(&HANDLER) else { return 0 };
    let events: Vec<_> = {
        let mut queue = lock(&QUEUE);
        QUEUED.store(0, Ordering::SeqCst);
        queue.drain(..).collect()
    };
    let mut delivered = 0;
    for (level, message) in events {
        call(handler, level, &message);
        delivered += 1;
    }
    let dropped = DROPPED.swap(0, Ordering::SeqCst);
    if dropped > 0 {
        let message = format!("{dropped} log event(s) of other threads dropped: the queue was full");
        call(handler, rm_log_level::Warn, &message);
        delivered += 1;
    }
    delivered
}

/// Queues an event for the owner thread, or counts it as dropped.
fn enqueue(level: rm_log_level, message: String) {
    let mut queue = lock(&QUEUE);
    if queue.len() >= RM_LOG_QUEUE_CAPACITY {
        DROPPED.fetch_add(1, Ordering::SeqCst);
        return;
    }
    queue.push_back((level, message));
    QUEUED.store(queue.len(), Ordering::SeqCst);
}

/// Formats an event: its message, then ` key=value` per other field.
#[derive(Default)]
struct Formatter {
    message: String,
    fields: String,
}

impl Visit for Formatter {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

/// The subscriber: level filter, formatting, delivery or queueing. Spans are ignored.
struct Bridge;

impl Subscriber for Bridge {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The level can change at any time: ask `enabled` on every event.
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        rm_log_level::of(metadata.level()) as u8 <= LEVEL.load(Ordering::Relaxed)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(NEXT_SPAN.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        // Nothing here may unwind into the library code that logged.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let level = rm_log_level::of(event.metadata().level());
            let mut f = Formatter::default();
            event.record(&mut f);
            let message = f.message + &f.fields;
            if may_call_here() {
                deliver_queued();
                if let Some(handler) = *lock(&HANDLER) {
                    call(handler, level, &message);
                }
            } else if GENERATION.load(Ordering::SeqCst) != 0 {
                enqueue(level, message);
            }
        }));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Installs the bridge as the process's global `tracing` subscriber (once).
fn install() -> Result<(), Failure> {
    static INSTALL: Once = Once::new();
    static INSTALLED: AtomicU8 = AtomicU8::new(0);
    INSTALL.call_once(|| {
        let ok = tracing::subscriber::set_global_default(Bridge).is_ok();
        INSTALLED.store(if ok { 1 } else { 2 }, Ordering::SeqCst);
    });
    match INSTALLED.load(Ordering::SeqCst) {
        1 => Ok(()),
        _ => Err(Failure::invalid("another tracing subscriber is installed in this process")),
    }
}

/// Sends the library's log events to `callback`, on the calling thread only, from now on.
///
/// - `callback`: called with `userdata`, an event's level and its message (see
///   [`rm_log_callback`]); NULL removes the handler (events are then discarded, and so are
///   the queued ones).
/// - `level`: the most verbose level wanted (`RM_LOG_LEVEL_WARN`: errors and warnings);
///   less important events are not even formatted. `RM_LOG_LEVEL_OFF` wants none.
///
/// The calling thread becomes the only one on which `callback` is called: events of other
/// threads are queued (at most `RM_LOG_QUEUE_CAPACITY`, the rest counted and reported as
/// dropped) and delivered when an export returns on this thread, or by [`rm_log_flush`].
/// The callback is never re-entered: events raised while it runs are queued too. It must
/// not unwind (C functions don't). Registering again replaces the handler and its thread.
///
/// Returns `RM_RESULT_OK`, or `RM_RESULT_INVALID_INPUT` if another `tracing` subscriber was
/// installed in the process first (only possible when Rust code of its own shares it).
///
/// # Safety
/// `callback` (if not NULL) is safe to call with `userdata` on this thread until it is
/// replaced or removed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_log_set_handler(
    callback: rm_log_callback,
    userdata: *mut c_void,
    level: rm_log_level,
) -> rm_result {
    ffi_call(|| {
        let Some(cb) = callback else {
            *lock(&HANDLER) = None;
            LEVEL.store(0, Ordering::SeqCst);
            GENERATION.store(0, Ordering::SeqCst);
            lock(&QUEUE).clear();
            QUEUED.store(0, Ordering::SeqCst);
            DROPPED.store(0, Ordering::SeqCst);
            return Ok(());
        };
        install()?;
        *lock(&HANDLER) = Some(Handler { cb, userdata });
        static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);
        let generation = NEXT_GENERATION.fetch_add(1, Ordering::SeqCst);
        OWNER_OF.with(|g| g.set(generation));
        GENERATION.store(generation, Ordering::SeqCst);
        LEVEL.store(level as u8, Ordering::SeqCst);
        Ok(())
    })
}

/// Changes the most verbose level wanted by the handler (see [`rm_log_set_handler`]); for
/// example `RM_LOG_LEVEL_DEBUG` while a user with debugging on is logged in. Without a
/// handler it has no effect.
#[unsafe(no_mangle)]
pub extern "C" fn rm_log_set_level(level: rm_log_level) {
    if GENERATION.load(Ordering::SeqCst) != 0 {
        LEVEL.store(level as u8, Ordering::SeqCst);
    }
}

/// Delivers the queued events of other threads now, if called on the handler's thread
/// (outside its callback); returns how many messages were delivered (the report of dropped
/// events counts as one). Exports do this by themselves when they return: call it when
/// the library may have logged from its threads while no export was called (before
/// exiting, say).
#[unsafe(no_mangle)]
pub extern "C" fn rm_log_flush() -> usize {
    let mut delivered = 0;
    let _ = ffi_boundary(|| {
        delivered = deliver_queued();
        rm_result::Ok
    });
    delivered
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::thread::{self, ThreadId};

    use super::*;
    use crate::panic::ffi_call;

    /// What the callback saw: its thread, the level, the message.
    static SEEN: Mutex<Vec<(ThreadId, rm_log_level, String)>> = Mutex::new(Vec::new());

    unsafe extern "C" fn record(_: *mut c_void, level: rm_log_level, message: *const c_char, len: usize) {
        // SAFETY: the bridge passes `len` valid bytes (and a NUL after them).
        let bytes = unsafe { std::slice::from_raw_parts(message.cast::<u8>(), len) };
        let text = String::from_utf8_lossy(bytes).into_owned();
        // SAFETY: the NUL after the `len` bytes is part of the buffer.
        assert_eq!(unsafe { *message.add(len) }, 0, "NUL-terminated");
        let reenter = text == "re-enter";
        SEEN.lock().unwrap().push((thread::current().id(), level, text));
        if reenter {
            tracing::warn!("logged inside the callback");
        }
    }

    fn seen() -> Vec<(ThreadId, rm_log_level, String)> {
        std::mem::take(&mut *SEEN.lock().unwrap())
    }

    fn on_another_thread(f: impl FnOnce() + Send + 'static) {
        thread::spawn(f).join().unwrap();
    }

    // One test: the bridge is process-wide state.
    #[test]
    fn events_reach_the_callback_on_the_registering_thread_only() {
        let me = thread::current().id();
        // SAFETY: `record` is safe to call on any thread, with any userdata.
        let rc = unsafe { rm_log_set_handler(Some(record), std::ptr::null_mut(), rm_log_level::Warn) };
        assert_eq!(rc, rm_result::Ok);

        // On the owner thread: at once, with the fields; below the level: nothing.
        tracing::warn!(object = "m.1", key = 7, "a damaged record");
        tracing::info!("not wanted at WARN");
        assert_eq!(seen(), [(me, rm_log_level::Warn, "a damaged record object=m.1 key=7".to_string())]);

        // From another thread: queued, delivered by rm_log_flush on the owner thread.
        on_another_thread(|| tracing::error!(n = 1, "from a librados thread"));
        assert_eq!(seen(), []);
        on_another_thread(|| assert_eq!(rm_log_flush(), 0, "not the owner thread"));
        assert_eq!(seen(), []);
        assert_eq!(rm_log_flush(), 1);
        assert_eq!(seen(), [(me, rm_log_level::Error, "from a librados thread n=1".to_string())]);

        // ... or when any export returns on the owner thread.
        on_another_thread(|| tracing::warn!("queued"));
        assert_eq!(ffi_call(|| Ok(())), rm_result::Ok);
        assert_eq!(seen(), [(me, rm_log_level::Warn, "queued".to_string())]);

        // The queue is bounded; the drops are counted and reported once.
        on_another_thread(|| {
            for i in 0..RM_LOG_QUEUE_CAPACITY + 5 {
                tracing::warn!(i, "flood");
            }
        });
        assert_eq!(rm_log_flush(), RM_LOG_QUEUE_CAPACITY + 1);
        let got = seen();
        assert_eq!(got.len(), RM_LOG_QUEUE_CAPACITY + 1);
        assert!(got.iter().all(|(t, _, _)| *t == me));
        assert_eq!(got[0].2, "flood i=0");
        assert_eq!(got[RM_LOG_QUEUE_CAPACITY - 1].2, format!("flood i={}", RM_LOG_QUEUE_CAPACITY - 1));
        assert_eq!(got[RM_LOG_QUEUE_CAPACITY].2, "5 log event(s) of other threads dropped: the queue was full");
        assert_eq!(rm_log_flush(), 0);

        // The callback is not re-entered: what it logs waits for the next delivery.
        tracing::warn!("re-enter");
        assert_eq!(seen(), [(me, rm_log_level::Warn, "re-enter".to_string())]);
        assert_eq!(rm_log_flush(), 1);
        assert_eq!(seen(), [(me, rm_log_level::Warn, "logged inside the callback".to_string())]);

        // The level can be raised (mail_debug) and lowered.
        rm_log_set_level(rm_log_level::Debug);
        tracing::debug!("wanted now");
        tracing::trace!("still not");
        assert_eq!(seen(), [(me, rm_log_level::Debug, "wanted now".to_string())]);
        rm_log_set_level(rm_log_level::Warn);
        tracing::debug!("not any more");
        assert_eq!(seen(), []);

        // NULL removes the handler: nothing is delivered or queued any more.
        on_another_thread(|| tracing::warn!("discarded with the queue"));
        // SAFETY: removing needs no valid callback.
        assert_eq!(unsafe { rm_log_set_handler(None, std::ptr::null_mut(), rm_log_level::Warn) }, rm_result::Ok);
        tracing::error!("no handler");
        on_another_thread(|| tracing::error!("no handler either"));
        assert_eq!(rm_log_flush(), 0);
        assert_eq!(seen(), []);
    }
}
