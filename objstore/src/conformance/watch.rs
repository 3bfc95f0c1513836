//! Conformance cases of watch and notify.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use futures::executor::block_on;

use super::{Store, not_found};
use crate::{Error, WatchCallback, WatchEvent};

/// How long a notify may take to reach a watcher on a loaded test machine.
const DELIVERY: Duration = Duration::from_secs(10);

/// Collects the events of one watch.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<WatchEvent>>,
    arrived: Condvar,
}

impl Recorder {
    fn callback(self: &Arc<Self>) -> WatchCallback {
        let me = self.clone();
        Arc::new(move |e| {
            me.events.lock().unwrap().push(e);
            me.arrived.notify_all();
        })
    }

    /// Waits until `n` events arrived (or the delivery time passed) and returns them all.
    fn wait_for(&self, n: usize) -> Vec<WatchEvent> {
        let deadline = Instant::now() + DELIVERY;
        let mut events = self.events.lock().unwrap();
        while events.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            events = self.arrived.wait_timeout(events, left).unwrap().0;
        }
        events.clone()
    }

    /// The events after a pause long enough for a stray one to arrive.
    fn settled(&self) -> Vec<WatchEvent> {
        std::thread::sleep(Duration::from_millis(300));
        self.events.lock().unwrap().clone()
    }
}

fn notified(payload: &[u8]) -> WatchEvent {
    WatchEvent::Notify(payload.to_vec())
}

/// Every watcher of an object gets each notify with its payload, byte for byte; watchers
/// of other objects get nothing.
pub fn watch_receives_notifies(s: &Store) {
    s.write_full("o", b"").unwrap();
    s.write_full("other", b"").unwrap();
    let (a, b, c) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let wa = s.watch("o", a.callback()).unwrap();
    let _wb = s.watch("o", b.callback()).unwrap();
    let _wc = s.watch("other", c.callback()).unwrap();
    assert_eq!(wa.oid(), "o");
    wa.check().unwrap();
    let payload: Vec<u8> = (0..=255u8).collect();
    block_on(s.notify_async("o", &payload)).unwrap();
    assert_eq!(a.wait_for(1), [notified(&payload)]);
    assert_eq!(b.wait_for(1), [notified(&payload)]);
    block_on(s.notify_async("o", b"")).unwrap();
    assert_eq!(a.wait_for(2), [notified(&payload), notified(b"")], "an empty payload is a notify too");
    assert!(c.settled().is_empty(), "a watcher of another object heard {:?}", c.settled());
    wa.check().unwrap();
}

/// Watching or notifying a missing object fails with `NotFound`.
pub fn watch_and_notify_missing_object(s: &Store) {
    let r = Arc::new(Recorder::default());
    assert_eq!(s.watch("missing", r.callback()).unwrap_err(), not_found("missing"));
    assert_eq!(block_on(s.notify_async("missing", b"x")).unwrap_err(), not_found("missing"));
}

/// After the handle is dropped no event arrives; a notify without watchers succeeds.
pub fn unwatch_stops_events(s: &Store) {
    s.write_full("o", b"").unwrap();
    let r = Arc::new(Recorder::default());
    let w = s.watch("o", r.callback()).unwrap();
    block_on(s.notify_async("o", b"1")).unwrap();
    assert_eq!(r.wait_for(1), [notified(b"1")]);
    drop(w);
    block_on(s.notify_async("o", b"2")).unwrap();
    assert_eq!(r.settled(), [notified(b"1")], "no event after the unwatch");
}

/// A notify reaches the watchers of its namespace only.
pub fn notifies_stay_in_their_namespace(s: &Store) {
    let other = s.with_namespace(&format!("{}-other", s.namespace())).unwrap();
    s.write_full("o", b"").unwrap();
    other.write_full("o", b"").unwrap();
    let (mine, theirs) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let _m = s.watch("o", mine.callback()).unwrap();
    let _t = other.watch("o", theirs.callback()).unwrap();
    block_on(s.notify_async("o", b"mine")).unwrap();
    assert_eq!(mine.wait_for(1), [notified(b"mine")]);
    assert!(theirs.settled().is_empty());
}

/// Fire-and-forget notifies (no outcome asked for) all arrive.
pub fn fire_and_forget_notifies_arrive(s: &Store) {
    s.write_full("o", b"").unwrap();
    let r = Arc::new(Recorder::default());
    let _w = s.watch("o", r.callback()).unwrap();
    for i in 0..50u32 {
        s.notify("o", &i.to_le_bytes(), None);
    }
    let mut got: Vec<u32> = r
        .wait_for(50)
        .into_iter()
        .map(|e| match e {
            WatchEvent::Notify(p) => u32::from_le_bytes(p.try_into().unwrap()),
            other => panic!("{other:?}"),
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..50).collect::<Vec<_>>());
}

/// Removing a watched object breaks its watch: one `Error` event, then nothing.
pub fn removing_a_watched_object_breaks_the_watch(s: &Store) {
    s.write_full("o", b"").unwrap();
    let r = Arc::new(Recorder::default());
    let w = s.watch("o", r.callback()).unwrap();
    s.remove("o").unwrap();
    let events = r.wait_for(1);
    assert!(matches!(events.as_slice(), [WatchEvent::Error(_)]), "{events:?}");
    assert!(w.check().is_err());
    s.write_full("o", b"").unwrap();
    block_on(s.notify_async("o", b"later")).unwrap();
    assert_eq!(r.settled().len(), 1, "nothing after the error");
    let err: Error = w.check().unwrap_err();
    assert!(!matches!(err, Error::InvalidInput(_)), "{err:?}");
}
