//! `StoreManager::update` under contention: 64 threads increment one
//! session's counter at once. No increment may be lost; how many calls
//! exhausted their retries (the backoff's job is to make that rare) is
//! printed, not asserted: speed and rates belong in benchmarks.

use std::sync::{Arc, Barrier};

use latchkey::{Error, MemoryStore, NewSession, SessionManager, StoreManager};

#[test]
fn sixty_four_threads_updating_one_session_lose_no_increment() {
    const THREADS: usize = 64;
    const EACH: u64 = 25;
    let manager = StoreManager::new(MemoryStore::new());
    let token = manager
        .create(NewSession::new())
        .unwrap()
        .token()
        .to_owned();
    let start = Arc::new(Barrier::new(THREADS));
    let (mut calls, mut exhausted) = (0u64, 0u64);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (manager, token, start) = (&manager, &token, Arc::clone(&start));
                s.spawn(move || {
                    start.wait();
                    let (mut done, mut calls, mut gave_up) = (0u64, 0u64, 0u64);
                    while done < EACH {
                        calls += 1;
                        match manager.update(token, |s| {
                            let n = s.get::<u64>("n").unwrap().unwrap_or(0);
                            s.insert("n", &(n + 1)).unwrap();
                        }) {
                            Ok(_) => done += 1,
                            // Given up: nothing was written, so the
                            // caller may try again and nothing is lost.
                            Err(Error::Conflict) => gave_up += 1,
                            Err(e) => panic!("update failed: {e}"),
                        }
                    }
                    (calls, gave_up)
                })
            })
            .collect();
        for h in handles {
            let (c, g) = h.join().unwrap();
            calls += c;
            exhausted += g;
        }
    });
    let n: u64 = manager
        .load(&token)
        .unwrap()
        .session
        .get("n")
        .unwrap()
        .unwrap();
    assert_eq!(n, THREADS as u64 * EACH, "an increment was lost");
    eprintln!(
        "update contention: {THREADS} threads, {n} increments, {calls} calls, \
         {exhausted} exhausted their retries ({:.2}%)",
        100.0 * exhausted as f64 / calls as f64
    );
}
