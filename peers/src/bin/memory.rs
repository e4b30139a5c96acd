//! Bytes per live session: latchkey's `MemoryStore` against tower-sessions'
//! `MemoryStore`, each holding the same three-entry payload.
//!
//! ```text
//! cargo run --release -p latchkey-peers --bin memory            # 1M sessions
//! cargo run --release -p latchkey-peers --bin memory -- 100000  # another count
//! ```
//!
//! A counting global allocator tracks the bytes currently allocated (as
//! requested from the allocator, so malloc's own per-chunk overhead is not
//! included; it is the same for both). Each store is filled through its
//! public API (`StoreManager::create`, `SessionStore::create`) and the
//! difference in live bytes before and after, divided by the session count,
//! is its cost per session: the table, the records and their data. Nothing
//! else is kept alive meanwhile (issued tokens are dropped).
//!
//! At 1M sessions (the default) the anonymous figure and tower-sessions'
//! are recorded as case `memory_1m` for `report`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use latchkey::SessionManager as _;
use latchkey_peers::{current_thread_runtime, new_session, seed_latchkey, tower_record};
use tower_sessions_core::SessionStore as _;

/// Counts live heap bytes, then defers to the system allocator.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees carry over; the counter is a side
// effect that never touches the memory itself.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (see the impl's comment).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged (see the impl's comment).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (see the impl's comment).
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged (see the impl's comment).
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn report(name: &str, n: usize, bytes: usize) -> f64 {
    println!(
        "{name:<34} {n:>9} sessions  {:>12} bytes  {:>7.1} bytes/session",
        bytes,
        bytes as f64 / n as f64
    );
    bytes as f64 / n as f64
}

fn main() {
    let n: usize = match std::env::args().nth(1) {
        Some(s) => match s.parse() {
            Ok(n) if n > 0 => n,
            _ => panic!("usage: memory [SESSIONS]"),
        },
        None => 1_000_000,
    };

    // latchkey, anonymous sessions with the payload.
    let ours = {
        let before = live();
        let (manager, tokens) = seed_latchkey(n);
        drop(tokens);
        let used = live() - before;
        assert_eq!(manager.store().len(), n);
        report("latchkey MemoryStore", n, used)
    };

    // latchkey, sessions bound to a user (adds the user name and the
    // per-user index).
    {
        let before = live();
        let (manager, _) = seed_latchkey(0);
        let new = new_session();
        for i in 0..n {
            let s = new.clone().with_user(format!("user-{i:07}"));
            if let Err(e) = manager.create(s) {
                panic!("create failed: {e}");
            }
        }
        let used = live() - before;
        assert_eq!(manager.store().len(), n);
        let _ = report("latchkey MemoryStore (with user)", n, used);
    }

    // tower-sessions.
    let theirs = {
        let rt = current_thread_runtime();
        let before = live();
        let store = tower_sessions_memory_store::MemoryStore::default();
        rt.block_on(async {
            for _ in 0..n {
                let mut r = tower_record();
                if let Err(e) = store.create(&mut r).await {
                    panic!("create failed: {e}");
                }
            }
        });
        let used = live() - before;
        let theirs = report("tower-sessions MemoryStore", n, used);
        drop(store);
        theirs
    };
    if n == 1_000_000 {
        latchkey_peers::results::record(
            "memory_1m",
            latchkey_peers::results::Figure {
                latchkey: Some(ours),
                peer: Some(theirs),
                floor: None,
                how: "live heap bytes ÷ sessions, anonymous sessions".into(),
                ..Default::default()
            },
        );
    }
}
