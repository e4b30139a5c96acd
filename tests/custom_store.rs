//! A store written outside the crate that overrides `Store::peek`, building
//! its `LiveRef` with a struct literal and its data from borrowed text (as a
//! store that keeps records as text would), against the shared conformance
//! suite and through `StoreManager`.

mod conformance;

use std::sync::Arc;

use conformance::store_conformance;
use latchkey::store::DataRef;
use latchkey::store::{LiveRef, Peek, RecordState};
use latchkey::{
    ManualClock, MemoryStore, NewSession, SessionManager, Store, StoreError, StoreKey, StoreManager,
};

/// A `MemoryStore` whose `peek` shows each live record with its data as
/// encoded text, through a struct literal.
#[derive(Debug)]
struct TextPeek(MemoryStore);

impl Store for TextPeek {
    conformance::forward_store!(0);

    fn peek<R>(&self, key: &StoreKey, f: impl FnOnce(Result<Peek<'_>, StoreError>) -> R) -> R {
        let record = match self.0.get(key) {
            Ok(Some(record)) => record,
            Ok(None) => return f(Ok(Peek::Missing)),
            Err(e) => return f(Err(e)),
        };
        let RecordState::Live(live) = &record.state else {
            return f(Ok(Peek::NotLive));
        };
        // The data as text, the rest as `LiveRef::new` borrows it.
        let text = live.data.encoded();
        f(Ok(Peek::Live(LiveRef {
            data: DataRef::from(&*text),
            ..LiveRef::new(record.version, live)
        })))
    }
}

fn text_peek(clock: &ManualClock) -> TextPeek {
    TextPeek(MemoryStore::new().with_clock(Arc::new(clock.clone())))
}

store_conformance!(text_peek, super::text_peek);

#[test]
fn a_load_through_a_text_peek_sees_the_session_that_was_saved() {
    let clock = ManualClock::new(conformance::START);
    let manager = StoreManager::new(text_peek(&clock)).with_clock(Arc::new(clock.clone()));
    let new = NewSession::new()
        .with_user("alice")
        .with_device("phone")
        .with_value("theme", "dark")
        .unwrap();
    let issued = manager.create(new).unwrap();
    let session = manager.load(issued.token()).unwrap().session;
    assert_eq!(session.user(), Some("alice"));
    assert_eq!(session.device(), Some("phone"));
    assert_eq!(
        session.get::<String>("theme").unwrap().as_deref(),
        Some("dark")
    );
    assert_eq!(session.version(), 1);
    // An ended record is shown as not live and takes the slow way.
    manager.terminate(&session).unwrap();
    let err = manager.load(issued.token()).unwrap_err();
    assert!(matches!(err, latchkey::Error::Terminated { .. }), "{err:?}");
}
