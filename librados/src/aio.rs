//! One compound operation in flight: librados aio completions as futures.
//!
//! An operation's C handles and the buffers librados writes results into live in a
//! [`Pending`] behind an `Arc`. One reference is handed to the completion callback, so the
//! buffers stay valid until librados is done with them even if the awaiting future is
//! dropped early (cancellation never frees memory librados still writes to). The future
//! holds a slot of the connection's in-flight semaphore for the whole operation.

use std::cell::UnsafeCell;
use std::collections::BTreeMap;

use std::os::raw::{c_char, c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, SystemTime};

use futures::channel::oneshot;
use librados_sys as sys;
use objstore::{CmpOp, Error, Guard, Mutation, OmapPage, ReadOp, ReadResult, Result, Stat, WriteOp};
use tokio::sync::OwnedSemaphorePermit;

use crate::cluster::IoCtx;
use crate::errno::{GuardKinds, cstring, op_result, slice};
use crate::quiesce::Busy;

/// The C handle of the compound operation.
enum OpHandle {
    Write(sys::rados_write_op_t),
    Read(sys::rados_read_op_t),
}

/// Where librados writes the results of a read; addresses are stable (heap, never moved).
struct Outputs {
    /// Per-sub-op return values; sized before any pointer into it is taken.
    rvals: Vec<c_int>,
    stat_size: u64,
    stat_mtime: sys::time_t,
    buf: Vec<u8>,
    bytes_read: usize,
    xattrs: sys::rados_xattrs_iter_t,
    omap_keys: sys::rados_omap_iter_t,
    omap_range: sys::rados_omap_iter_t,
    omap_more: u8,
}

struct Pending {
    completion: AtomicPtr<c_void>,
    op: OpHandle,
    out: UnsafeCell<Outputs>,
    done: Mutex<Option<oneshot::Sender<Arc<Pending>>>>,
    _slot: OwnedSemaphorePermit,
    _io: Arc<IoCtx>,
    /// Last field: released after `_io`, which may hold the cluster's last reference.
    _busy: Busy,
}

// SAFETY: the C handles are used by one thread at a time: built and submitted by the
// submitting task, written by librados until completion, then read by the awaiting task
// only after the completion callback signalled. `Outputs` is never accessed concurrently
// for the same reason.
unsafe impl Send for Pending {}
// SAFETY: see `Send`; shared references only touch the `Mutex` and the atomic.
unsafe impl Sync for Pending {}

impl Drop for Pending {
    fn drop(&mut self) {
        let out = self.out.get_mut();
        // SAFETY: librados allocated these iterators when the op was built and no longer
        // touches them: either the operation completed or it was never submitted.
        unsafe {
            if !out.xattrs.is_null() {
                sys::rados_getxattrs_end(out.xattrs);
            }
            if !out.omap_keys.is_null() {
                sys::rados_omap_get_end(out.omap_keys);
            }
            if !out.omap_range.is_null() {
                sys::rados_omap_get_end(out.omap_range);
            }
            match self.op {
                OpHandle::Write(op) => sys::rados_release_write_op(op),
                OpHandle::Read(op) => sys::rados_release_read_op(op),
            }
            let c = *self.completion.get_mut();
            if !c.is_null() {
                sys::rados_aio_release(c);
            }
        }
    }
}

extern "C" fn on_complete(_c: sys::rados_completion_t, arg: *mut c_void) {
    // SAFETY: `arg` is the `Arc<Pending>` leaked by `submit`, reclaimed exactly once here.
    let pending = unsafe { Arc::from_raw(arg as *const Pending) };
    let sender = pending.done.lock().unwrap_or_else(|e| e.into_inner()).take();
    // This runs on a librados thread, which must never drop the last reference: that could
    // be the last reference of the I/O context and the cluster too, and `rados_shutdown`
    // on a librados thread joins that thread itself (the process aborts with
    // std::system_error). So the reference goes to the awaiting future, or, when the future
    // is gone, to the reaper thread.
    let unclaimed = match sender {
        Some(tx) => tx.send(pending).err(),
        None => Some(pending),
    };
    if let Some(pending) = unclaimed {
        reap(Box::new(pending));
    }
}

/// Drops references to finished operations (and anything else that may hold the last
/// reference of an I/O context) on a thread of our own, never on a librados thread.
pub(crate) fn reap(item: Box<dyn Send>) {
    type Reaped = Box<dyn Send>;
    static REAPER: OnceLock<Mutex<mpsc::Sender<Reaped>>> = OnceLock::new();
    let tx = REAPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Reaped>();
        std::thread::Builder::new()
            .name("rados-reaper".into())
            .spawn(move || rx.into_iter().for_each(drop))
            .expect("spawning the rados-reaper thread");
        Mutex::new(tx)
    });
    // If the reaper is gone (process exiting), leaking the reference is the safe choice.
    if let Err(mpsc::SendError(p)) = tx.lock().unwrap_or_else(|e| e.into_inner()).send(item) {
        std::mem::forget(p);
    }
}

fn cmp_code(op: CmpOp) -> u8 {
    (match op {
        CmpOp::Eq => sys::LIBRADOS_CMPXATTR_OP_EQ,
        CmpOp::Lt => sys::LIBRADOS_CMPXATTR_OP_LT,
        CmpOp::Gt => sys::LIBRADOS_CMPXATTR_OP_GT,
    }) as u8
}

/// The xattr comparison of the OSD reads "operand OP stored" (the omap one reads
/// "stored OP operand"); swap to keep [`CmpOp`]'s single meaning.
fn xattr_cmp_code(op: CmpOp) -> u8 {
    cmp_code(match op {
        CmpOp::Eq => CmpOp::Eq,
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Gt => CmpOp::Lt,
    })
}

fn guard_kinds(guards: &[Guard]) -> GuardKinds {
    let mut k = GuardKinds::default();
    for g in guards {
        match g {
            Guard::AssertVersion(_) => k.version = true,
            Guard::OmapCmp { .. } | Guard::CmpXattr { .. } => k.compare = true,
            _ => {}
        }
    }
    k
}

fn omap_cmp_count(guards: &[Guard]) -> usize {
    guards.iter().filter(|g| matches!(g, Guard::OmapCmp { .. })).count()
}

impl Pending {
    fn new(
        io: &Arc<IoCtx>,
        op: OpHandle,
        slot: OwnedSemaphorePermit,
        rvals: usize,
    ) -> (Arc<Pending>, oneshot::Receiver<Arc<Pending>>) {
        let (tx, rx) = oneshot::channel();
        let out = Outputs {
            rvals: vec![0; rvals],
            stat_size: 0,
            stat_mtime: 0,
            buf: Vec::new(),
            bytes_read: 0,
            xattrs: ptr::null_mut(),
            omap_keys: ptr::null_mut(),
            omap_range: ptr::null_mut(),
            omap_more: 0,
        };
        let p = Pending {
            completion: AtomicPtr::new(ptr::null_mut()),
            op,
            out: UnsafeCell::new(out),
            done: Mutex::new(Some(tx)),
            _slot: slot,
            _io: io.clone(),
            _busy: Busy::new(),
        };
        (Arc::new(p), rx)
    }

    /// Creates the completion and submits the operation; `launch` calls the right
    /// `rados_aio_*_operate` with the completion.
    fn submit(
        self: &Arc<Self>,
        what: &str,
        oid: &str,
        launch: impl FnOnce(sys::rados_completion_t) -> c_int,
    ) -> Result<()> {
        let arg = Arc::into_raw(self.clone()) as *mut c_void;
        let mut c: sys::rados_completion_t = ptr::null_mut();
        // SAFETY: valid out-pointer; `arg` stays valid until the callback reclaims it.
        let rc = unsafe { sys::rados_aio_create_completion2(arg, Some(on_complete), &mut c) };
        if rc < 0 {
            // SAFETY: no completion exists, so no callback will reclaim `arg`: do it here.
            drop(unsafe { Arc::from_raw(arg as *const Pending) });
            return op_result(rc, oid, GuardKinds::default(), what);
        }
        self.completion.store(c, Ordering::Release);
        let rc = launch(c);
        if rc < 0 {
            // SAFETY: the operation was refused before submission, so the callback never
            // runs; reclaim its reference.
            drop(unsafe { Arc::from_raw(arg as *const Pending) });
            return op_result(rc, oid, GuardKinds::default(), what);
        }
        Ok(())
    }

    fn completion(&self) -> sys::rados_completion_t {
        self.completion.load(Ordering::Acquire)
    }

    /// Return value and object version, once complete.
    fn outcome(&self) -> (c_int, u64) {
        let c = self.completion();
        // SAFETY: the completion exists and has completed (the callback fired).
        unsafe { (sys::rados_aio_get_return_value(c), sys::rados_aio_get_version(c)) }
    }
}

async fn slot(io: &Arc<IoCtx>) -> OwnedSemaphorePermit {
    io.cluster().slots.clone().acquire_owned().await.expect("the in-flight semaphore is never closed")
}

/// Runs a compound write; returns the object's new version.
pub(crate) async fn write(io: Arc<IoCtx>, oid: &str, op: &WriteOp) -> Result<u64> {
    op.validate(oid)?;
    let slot = slot(&io).await;
    let (pending, rx) = start_write(&io, slot, oid, op)?;
    finish_write(pending, rx, oid, guard_kinds(&op.guards)).await
}

/// [`write`] of an owned operation: its buffers are freed as soon as librados has copied
/// them, before the round trip, so that many large writes in flight hold one copy each.
pub(crate) async fn write_owned(io: Arc<IoCtx>, oid: String, op: WriteOp) -> Result<u64> {
    op.validate(&oid)?;
    let slot = slot(&io).await;
    let (pending, rx) = start_write(&io, slot, &oid, &op)?;
    let guards = guard_kinds(&op.guards);
    drop(op);
    finish_write(pending, rx, &oid, guards).await
}

async fn finish_write(
    pending: Arc<Pending>,
    rx: oneshot::Receiver<Arc<Pending>>,
    oid: &str,
    guards: GuardKinds,
) -> Result<u64> {
    let _callback_ref = rx.await.map_err(|_| Error::Unavailable("librados dropped a completion".into()))?;
    let (rc, version) = pending.outcome();
    op_result(rc, oid, guards, "write")?;
    Ok(version)
}

/// Builds and submits a write (no await in here: raw handles never cross an await point).
fn start_write(
    io: &Arc<IoCtx>,
    slot: OwnedSemaphorePermit,
    oid: &str,
    op: &WriteOp,
) -> Result<(Arc<Pending>, oneshot::Receiver<Arc<Pending>>)> {
    let oid_c = cstring("object name", oid)?;
    // SAFETY: plain constructor; the handle is owned by `Pending` and released in its Drop.
    let handle = unsafe { sys::rados_create_write_op() };
    let (pending, rx) = Pending::new(io, OpHandle::Write(handle), slot, omap_cmp_count(&op.guards));
    build_write(&pending, handle, op)?;
    pending.submit("write", oid, |c| {
        // SAFETY: built op, live I/O context, completion and NUL-terminated name; librados
        // copies the name. NULL mtime means "now".
        unsafe { sys::rados_aio_write_op_operate(handle, io.handle, c, oid_c.as_ptr(), ptr::null_mut(), 0) }
    })?;
    Ok((pending, rx))
}

fn build_write(pending: &Arc<Pending>, h: sys::rados_write_op_t, op: &WriteOp) -> Result<()> {
    // librados copies every input buffer while building, so temporaries may die after each
    // call; only the omap-compare return values must outlive the operation.
    let rvals: *mut c_int = {
        // SAFETY: not yet submitted: this thread is the only user of the outputs.
        let out = unsafe { &mut *pending.out.get() };
        out.rvals.as_mut_ptr()
    };
    let mut next_rval = 0usize;
    for g in &op.guards {
        // SAFETY: `h` is a fresh write op; pointers passed are valid for the
        // call (librados copies them), and `rvals` has one slot per omap comparison.
        unsafe {
            match g {
                Guard::AssertExists => sys::rados_write_op_assert_exists(h),
                Guard::CreateExclusive => {
                    sys::rados_write_op_create(h, sys::LIBRADOS_CREATE_EXCLUSIVE as c_int, ptr::null())
                }
                Guard::AssertVersion(v) => sys::rados_write_op_assert_version(h, *v),
                Guard::OmapCmp { key, op: cmp, value } => {
                    let rv = rvals.add(next_rval);
                    next_rval += 1;
                    sys::rados_write_op_omap_cmp2(
                        h,
                        key.as_ptr().cast(),
                        cmp_code(*cmp),
                        value.as_ptr().cast(),
                        key.len(),
                        value.len(),
                        rv,
                    )
                }
                Guard::CmpXattr { name, op: cmp, value } => {
                    let n = cstring("xattr name", name)?;
                    sys::rados_write_op_cmpxattr(
                        h,
                        n.as_ptr(),
                        xattr_cmp_code(*cmp),
                        value.as_ptr().cast(),
                        value.len(),
                    )
                }
            }
        }
    }
    for m in &op.mutations {
        // SAFETY: `h` is a fresh write op; buffers are copied by librados during each call.
        unsafe {
            match m {
                Mutation::Create => {
                    sys::rados_write_op_create(h, sys::LIBRADOS_CREATE_IDEMPOTENT as c_int, ptr::null())
                }
                Mutation::WriteFull(d) => sys::rados_write_op_write_full(h, d.as_ptr().cast(), d.len()),
                Mutation::Write { offset, data } => {
                    sys::rados_write_op_write(h, data.as_ptr().cast(), data.len(), *offset)
                }
                Mutation::Append(d) => sys::rados_write_op_append(h, d.as_ptr().cast(), d.len()),
                Mutation::Truncate(size) => sys::rados_write_op_truncate(h, *size),
                Mutation::Remove => sys::rados_write_op_remove(h),
                Mutation::SetXattr { name, value } => {
                    let n = cstring("xattr name", name)?;
                    sys::rados_write_op_setxattr(h, n.as_ptr(), value.as_ptr().cast(), value.len())
                }
                Mutation::RmXattr(name) => {
                    let n = cstring("xattr name", name)?;
                    sys::rados_write_op_rmxattr(h, n.as_ptr())
                }
                Mutation::OmapSet(entries) => {
                    let keys: Vec<*const c_char> = entries.iter().map(|(k, _)| k.as_ptr().cast()).collect();
                    let vals: Vec<*const c_char> = entries.iter().map(|(_, v)| v.as_ptr().cast()).collect();
                    let klens: Vec<usize> = entries.iter().map(|(k, _)| k.len()).collect();
                    let vlens: Vec<usize> = entries.iter().map(|(_, v)| v.len()).collect();
                    sys::rados_write_op_omap_set2(
                        h,
                        keys.as_ptr(),
                        vals.as_ptr(),
                        klens.as_ptr(),
                        vlens.as_ptr(),
                        entries.len(),
                    )
                }
                Mutation::OmapRmKeys(keys) => {
                    let ptrs: Vec<*const c_char> = keys.iter().map(|k| k.as_ptr().cast()).collect();
                    let lens: Vec<usize> = keys.iter().map(String::len).collect();
                    sys::rados_write_op_omap_rm_keys2(h, ptrs.as_ptr(), lens.as_ptr(), keys.len())
                }
                Mutation::OmapRmRange { start, end } => sys::rados_write_op_omap_rm_range2(
                    h,
                    start.as_ptr().cast(),
                    start.len(),
                    end.as_ptr().cast(),
                    end.len(),
                ),
                Mutation::OmapClear => sys::rados_write_op_omap_clear(h),
            }
        }
    }
    Ok(())
}

/// Runs a compound read.
pub(crate) async fn read(io: Arc<IoCtx>, oid: &str, op: &ReadOp) -> Result<ReadResult> {
    op.validate(oid)?;
    let slot = slot(&io).await;
    let (pending, rx) = start_read(&io, slot, oid, op)?;
    let _callback_ref = rx.await.map_err(|_| Error::Unavailable("librados dropped a completion".into()))?;
    decode_read(&pending, oid, op)
}

/// Builds and submits a read (no await in here: raw handles never cross an await point).
fn start_read(
    io: &Arc<IoCtx>,
    slot: OwnedSemaphorePermit,
    oid: &str,
    op: &ReadOp,
) -> Result<(Arc<Pending>, oneshot::Receiver<Arc<Pending>>)> {
    let oid_c = cstring("object name", oid)?;
    // SAFETY: plain constructor; released by `Pending`'s Drop.
    let handle = unsafe { sys::rados_create_read_op() };
    let n_rvals = omap_cmp_count(&op.guards) + 5;
    let (pending, rx) = Pending::new(io, OpHandle::Read(handle), slot, n_rvals);
    build_read(&pending, handle, op)?;
    pending.submit("read", oid, |c| {
        // SAFETY: built op, live I/O context, completion and NUL-terminated name.
        unsafe { sys::rados_aio_read_op_operate(handle, io.handle, c, oid_c.as_ptr(), 0) }
    })?;
    Ok((pending, rx))
}

/// Turns the outputs of a completed read into a [`ReadResult`].
fn decode_read(pending: &Arc<Pending>, oid: &str, op: &ReadOp) -> Result<ReadResult> {
    let (rc, version) = pending.outcome();
    op_result(rc, oid, guard_kinds(&op.guards), "read")?;
    // SAFETY: the operation completed, librados no longer writes to the outputs, and this
    // task is their only user.
    let out = unsafe { &mut *pending.out.get() };
    for rv in &out.rvals {
        op_result(*rv, oid, guard_kinds(&op.guards), "read")?;
    }
    let mut r = ReadResult { version, ..Default::default() };
    if op.stat {
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(out.stat_mtime.max(0) as u64);
        r.stat = Some(Stat { size: out.stat_size, mtime });
    }
    if op.read.is_some() {
        let mut data = std::mem::take(&mut out.buf);
        // SAFETY: librados wrote `bytes_read` (at most the capacity we gave) bytes.
        unsafe { data.set_len(out.bytes_read.min(data.capacity())) };
        r.data = Some(data);
    }
    if op.xattrs {
        r.xattrs = Some(drain_xattrs(out.xattrs)?);
    }
    if op.omap_keys.is_some() {
        r.omap = Some(drain_omap(oid, out.omap_keys)?.into_iter().collect());
    }
    if op.omap_range.is_some() {
        r.omap_page = Some(OmapPage { entries: drain_omap(oid, out.omap_range)?, more: out.omap_more != 0 });
    }
    Ok(r)
}

fn build_read(pending: &Arc<Pending>, h: sys::rados_read_op_t, op: &ReadOp) -> Result<()> {
    // SAFETY: not yet submitted: this thread is the only user of the outputs. All pointers
    // taken below point into the `Arc`'s heap allocation (or the pre-sized vectors in it)
    // and stay valid until `Pending` drops, which is after completion.
    let out = unsafe { &mut *pending.out.get() };
    let rvals = out.rvals.as_mut_ptr();
    let mut next = 0usize;
    let mut rval = || {
        // SAFETY: `rvals` was sized for every guard plus one per read kind.
        let p = unsafe { rvals.add(next) };
        next += 1;
        p
    };
    for g in &op.guards {
        // SAFETY: fresh read op; inputs are copied by librados.
        unsafe {
            match g {
                Guard::AssertExists => sys::rados_read_op_assert_exists(h),
                Guard::AssertVersion(v) => sys::rados_read_op_assert_version(h, *v),
                Guard::OmapCmp { key, op: cmp, value } => sys::rados_read_op_omap_cmp2(
                    h,
                    key.as_ptr().cast(),
                    cmp_code(*cmp),
                    value.as_ptr().cast(),
                    key.len(),
                    value.len(),
                    rval(),
                ),
                Guard::CmpXattr { name, op: cmp, value } => {
                    let n = cstring("xattr name", name)?;
                    sys::rados_read_op_cmpxattr(h, n.as_ptr(), xattr_cmp_code(*cmp), value.as_ptr().cast(), value.len())
                }
                Guard::CreateExclusive => unreachable!("rejected by ReadOp::validate"),
            }
        }
    }
    if op.stat {
        // SAFETY: `out` lives in the `Arc` heap allocation until after completion.
        unsafe { sys::rados_read_op_stat(h, &mut out.stat_size, &mut out.stat_mtime, rval()) };
    }
    if let Some((offset, len)) = op.read {
        out.buf = Vec::with_capacity(len as usize);
        // SAFETY: the buffer has `len` bytes of capacity and is not touched again until completion.
        unsafe {
            sys::rados_read_op_read(h, offset, len as usize, out.buf.as_mut_ptr().cast(), &mut out.bytes_read, rval())
        };
    }
    if op.xattrs {
        // SAFETY: `out` lives in the `Arc` heap allocation until after completion.
        unsafe { sys::rados_read_op_getxattrs(h, &mut out.xattrs, rval()) };
    }
    if let Some(keys) = &op.omap_keys {
        let ptrs: Vec<*const c_char> = keys.iter().map(|k| k.as_ptr().cast()).collect();
        let lens: Vec<usize> = keys.iter().map(String::len).collect();
        // SAFETY: keys are copied by librados; outputs live in `out` until after completion.
        unsafe {
            sys::rados_read_op_omap_get_vals_by_keys2(
                h,
                ptrs.as_ptr(),
                keys.len(),
                lens.as_ptr(),
                &mut out.omap_keys,
                rval(),
            )
        };
    }
    if let Some(range) = &op.omap_range {
        let after = cstring("omap key", &range.start_after)?;
        let prefix = cstring("omap prefix", &range.prefix)?;
        // SAFETY: strings are copied by librados; outputs live in `out` until after completion.
        unsafe {
            sys::rados_read_op_omap_get_vals2(
                h,
                after.as_ptr(),
                prefix.as_ptr(),
                range.max as u64,
                &mut out.omap_range,
                &mut out.omap_more,
                rval(),
            )
        };
    }
    Ok(())
}

fn drain_xattrs(iter: sys::rados_xattrs_iter_t) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut map = BTreeMap::new();
    if iter.is_null() {
        return Ok(map);
    }
    loop {
        let (mut name, mut val, mut len) = (ptr::null(), ptr::null(), 0usize);
        // SAFETY: a completed xattr iterator; returned pointers are valid until the next call.
        let rc = unsafe { sys::rados_getxattrs_next(iter, &mut name, &mut val, &mut len) };
        if rc < 0 {
            return Err(Error::Rados { errno: -rc, context: "reading xattrs".into() });
        }
        if name.is_null() {
            return Ok(map);
        }
        // SAFETY: NUL-terminated name and `len` value bytes, valid until the next call.
        let (n, v) = unsafe { (std::ffi::CStr::from_ptr(name), slice(val.cast(), len)) };
        map.insert(n.to_string_lossy().into_owned(), v.to_vec());
    }
}

fn drain_omap(oid: &str, iter: sys::rados_omap_iter_t) -> Result<Vec<(String, Vec<u8>)>> {
    let mut entries = Vec::new();
    if iter.is_null() {
        return Ok(entries);
    }
    loop {
        let (mut k, mut v, mut klen, mut vlen) = (ptr::null_mut(), ptr::null_mut(), 0usize, 0usize);
        // SAFETY: a completed omap iterator; returned pointers are valid until the next call.
        let rc = unsafe { sys::rados_omap_get_next2(iter, &mut k, &mut v, &mut klen, &mut vlen) };
        if rc < 0 {
            return Err(Error::Rados { errno: -rc, context: format!("reading omap of {oid:?}") });
        }
        if k.is_null() {
            return Ok(entries);
        }
        // SAFETY: `klen`/`vlen` readable bytes, valid until the next call.
        let (key, val) = unsafe { (slice(k.cast(), klen), slice(v.cast(), vlen)) };
        let key = String::from_utf8(key.to_vec())
            .map_err(|_| Error::Corrupted { object: oid.into(), detail: format!("omap key {key:?} is not UTF-8") })?;
        entries.push((key, val.to_vec()));
    }
}
