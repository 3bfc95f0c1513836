//! Cluster connections and I/O contexts, with lifetimes tied by `Arc`.

use std::ffi::CStr;
use std::ptr;
use std::sync::Arc;

use librados_sys as sys;
use objstore::{Error, Result};
use tokio::sync::Semaphore;

use crate::config::ClusterConfig;
use crate::errno::{cstring, from_rc};

/// A connection to a Ceph cluster (`rados_t`). Shut down when the last handle is dropped.
///
/// Every [`IoCtx`] holds an `Arc` of its cluster, so the connection outlives all I/O
/// contexts and all operations in flight.
#[derive(Debug)]
pub struct Cluster {
    pub(crate) handle: sys::rados_t,
    /// Bounds the asynchronous operations in flight on this connection.
    pub(crate) slots: Arc<Semaphore>,
    /// Notifies in flight on this connection (bounded apart: they never wait for a slot).
    pub(crate) notifies: std::sync::atomic::AtomicUsize,
}

// SAFETY: a connected `rados_t` is documented as safe to use from several threads at once;
// we never mutate its configuration after `rados_connect`.
unsafe impl Send for Cluster {}
// SAFETY: see `Send` above; all methods take `&self` and librados synchronizes internally.
unsafe impl Sync for Cluster {}

impl Cluster {
    /// Connects as `config` says. Fails with `Unavailable` when the monitors cannot be
    /// reached within the configured timeout.
    pub fn connect(config: &ClusterConfig) -> Result<Arc<Cluster>> {
        let name = cstring("client name", &config.client_name)?;
        let mut handle: sys::rados_t = ptr::null_mut();
        // SAFETY: `handle` is a valid out-pointer; the strings are NUL-terminated and live
        // across the call.
        let rc = unsafe { sys::rados_create2(&mut handle, c"ceph".as_ptr(), name.as_ptr(), 0) };
        from_rc(rc, "rados_create2")?;
        // From here on `cluster` owns the handle and shuts it down on every error path.
        let cluster = Cluster {
            handle,
            slots: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            notifies: Default::default(),
        };
        let conf = config.conf_path.as_ref().map(|p| cstring("conf path", &p.to_string_lossy())).transpose()?;
        // SAFETY: the handle is valid and not yet connected; a NULL path means Ceph's default
        // search ($CEPH_CONF, /etc/ceph/ceph.conf, ...).
        let rc =
            unsafe { sys::rados_conf_read_file(cluster.handle, conf.as_ref().map_or(ptr::null(), |c| c.as_ptr())) };
        from_rc(rc, "reading the ceph configuration file")?;
        // SAFETY: as above; NULL means the CEPH_ARGS variable.
        let rc = unsafe { sys::rados_conf_parse_env(cluster.handle, ptr::null()) };
        from_rc(rc, "parsing CEPH_ARGS")?;
        let mut options: Vec<(String, String)> = Vec::new();
        if let Some(k) = &config.keyring {
            options.push(("keyring".into(), k.to_string_lossy().into_owned()));
        }
        if let Some(t) = config.op_timeout {
            let secs = t.as_secs().max(1);
            for opt in ["client_mount_timeout", "rados_mon_op_timeout", "rados_osd_op_timeout"] {
                options.push((opt.into(), secs.to_string()));
            }
            // The objecter asks the monitors for a newer OSD map only for ops that have been
            // in flight longer than `objecter_timeout` (default 10 s), checked every
            // `objecter_tick_interval` (5 s). Ops cancelled by a shorter op timeout never get
            // that old, so a client whose map names a restarted OSD's old address stays
            // stuck forever (seen on a single-OSD cluster: no recovery in 240 s). Keep both
            // well below the op timeout.
            options.push(("objecter_timeout".into(), (secs / 3).clamp(1, 10).to_string()));
            options.push(("objecter_tick_interval".into(), (secs / 6).clamp(1, 5).to_string()));
        }
        options.extend(config.options.iter().cloned());
        for (k, v) in &options {
            cluster.conf_set(k, v)?;
        }
        // SAFETY: the handle is configured and not yet connected.
        let rc = unsafe { sys::rados_connect(cluster.handle) };
        from_rc(rc, "connecting to the cluster")?;
        Ok(Arc::new(cluster))
    }

    fn conf_set(&self, option: &str, value: &str) -> Result<()> {
        let (o, v) = (cstring("option", option)?, cstring("option value", value)?);
        // SAFETY: valid handle, NUL-terminated strings living across the call.
        let rc = unsafe { sys::rados_conf_set(self.handle, o.as_ptr(), v.as_ptr()) };
        from_rc(rc, &format!("setting ceph option {option}"))
    }

    /// Opens an I/O context on `pool`, bound to `namespace`.
    pub fn ioctx(self: &Arc<Self>, pool: &str, namespace: &str) -> Result<Arc<IoCtx>> {
        let p = cstring("pool name", pool)?;
        let ns = cstring("namespace", namespace)?;
        let mut io: sys::rados_ioctx_t = ptr::null_mut();
        // SAFETY: connected handle, valid out-pointer, NUL-terminated pool name.
        let rc = unsafe { sys::rados_ioctx_create(self.handle, p.as_ptr(), &mut io) };
        if rc == -libc::ENOENT {
            return Err(Error::NotFound { object: format!("pool {pool}") });
        }
        from_rc(rc, &format!("opening pool {pool}"))?;
        // SAFETY: `io` was just created; the namespace is set once, before any other thread
        // can see this I/O context (setting it is not thread-safe).
        unsafe { sys::rados_ioctx_set_namespace(io, ns.as_ptr()) };
        Ok(Arc::new(IoCtx {
            cluster: self.clone(),
            handle: io,
            pool: pool.to_string(),
            namespace: namespace.to_string(),
        }))
    }

    /// The cluster's fsid.
    pub fn fsid(&self) -> Result<String> {
        let mut buf = [0 as std::os::raw::c_char; 64];
        // SAFETY: connected handle; the buffer is writable for its full length.
        let rc = unsafe { sys::rados_cluster_fsid(self.handle, buf.as_mut_ptr(), buf.len()) };
        if rc < 0 {
            from_rc(rc, "reading the fsid")?;
        }
        // SAFETY: librados wrote a NUL-terminated string into the buffer.
        Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SAFETY: the last reference is going away: no I/O context (each holds an `Arc` of
        // the cluster) and so no operation is left.
        unsafe { sys::rados_shutdown(self.handle) };
    }
}

/// An I/O context (`rados_ioctx_t`): one pool, one namespace, fixed at creation.
#[derive(Debug)]
pub struct IoCtx {
    cluster: Arc<Cluster>,
    pub(crate) handle: sys::rados_ioctx_t,
    pool: String,
    namespace: String,
}

// SAFETY: an I/O context is safe to share between threads as long as its namespace, locator
// key and snapshot settings are not changed concurrently; ours are set once at creation.
unsafe impl Send for IoCtx {}
// SAFETY: see `Send` above.
unsafe impl Sync for IoCtx {}

impl IoCtx {
    /// The connection this context belongs to.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }
    /// The pool name.
    pub fn pool(&self) -> &str {
        &self.pool
    }
    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Lists the objects of this context's namespace, or of every namespace as
    /// `(namespace, name)` pairs when `all_namespaces` is set.
    pub(crate) fn list(self: &Arc<Self>, all_namespaces: bool) -> Result<ListIter> {
        let io = if all_namespaces {
            let io = self.cluster.ioctx(&self.pool, "")?;
            // SAFETY: fresh, unshared context; LIBRADOS_ALL_NSPACES is NUL-terminated.
            unsafe { sys::rados_ioctx_set_namespace(io.handle, sys::LIBRADOS_ALL_NSPACES.as_ptr().cast()) };
            io
        } else {
            self.clone()
        };
        let mut ctx: sys::rados_list_ctx_t = ptr::null_mut();
        // SAFETY: valid context, valid out-pointer.
        let rc = unsafe { sys::rados_nobjects_list_open(io.handle, &mut ctx) };
        from_rc(rc, "listing objects")?;
        Ok(ListIter { io, ctx })
    }
}

impl Drop for IoCtx {
    fn drop(&mut self) {
        // SAFETY: last reference: every operation in flight holds an `Arc<IoCtx>`, so none is.
        unsafe { sys::rados_ioctx_destroy(self.handle) };
    }
}

/// An open object listing; yields `(namespace, name)`.
pub(crate) struct ListIter {
    io: Arc<IoCtx>,
    ctx: sys::rados_list_ctx_t,
}

// SAFETY: the listing context is only used through `&mut self`, one thread at a time; it
// refers to `io`, which the iterator keeps alive.
unsafe impl Send for ListIter {}

impl Iterator for ListIter {
    type Item = Result<(String, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        let (mut entry, mut key, mut ns) = (ptr::null(), ptr::null(), ptr::null());
        let (mut entry_len, mut key_len, mut ns_len) = (0usize, 0usize, 0usize);
        // SAFETY: open listing context; out-pointers valid. The returned strings stay valid
        // until the next call, and are copied before it.
        let rc = unsafe {
            sys::rados_nobjects_list_next2(
                self.ctx,
                &mut entry,
                &mut key,
                &mut ns,
                &mut entry_len,
                &mut key_len,
                &mut ns_len,
            )
        };
        if rc == -libc::ENOENT {
            return None;
        }
        if let Err(e) = from_rc(rc, "listing objects") {
            return Some(Err(e));
        }
        // SAFETY: librados returned pointers to `*_len` readable bytes (or NULL when empty).
        let bytes = |p: *const std::os::raw::c_char, n: usize| unsafe { crate::errno::slice(p.cast(), n) }.to_vec();
        let name = String::from_utf8(bytes(entry, entry_len));
        let space = String::from_utf8(bytes(ns, ns_len));
        Some(match (space, name) {
            (Ok(s), Ok(n)) => Ok((s, n)),
            _ => Err(Error::InvalidInput(format!("an object name in pool {} is not UTF-8", self.io.pool))),
        })
    }
}

impl Drop for ListIter {
    fn drop(&mut self) {
        // SAFETY: the context was opened by `list` and is closed exactly once.
        unsafe { sys::rados_nobjects_list_close(self.ctx) };
    }
}
