//! Checkpoints and sequence numbers (`latchkey::resume`) over both
//! managers: the compare-and-set rules, what a versioned save adds, and
//! exactly what holds for tickets with and without revocation.

// One module named for the feature, so `cargo test --test resume resume`
// (the filter the lib's `resume::` unit tests are run with) runs them all.
mod resume {
    use std::sync::Arc;
    use std::time::Duration;

    use latchkey::resume::{CHECKPOINTS_KEY, SEQUENCE_KEY, commit_ticket};
    use latchkey::{
        Checkpoint, Error, KeyRing, MAX_CHECKPOINT_NAME_LEN, MAX_CHECKPOINTS, ManualClock,
        MemoryStore, NewSession, ResumeError, Session, SessionManager, StoreManager, TicketKey,
        TicketManager, Timestamp,
    };

    fn cp(offset: u64, tag: u8) -> Checkpoint {
        Checkpoint::new(offset, [tag; 32])
    }

    /// A manager over each store, and the directory a file store lives in.
    type Managers = Vec<(
        &'static str,
        Box<dyn SessionManager>,
        Option<tempfile::TempDir>,
    )>;

    fn managers() -> Managers {
        let mut out: Managers = vec![(
            "memory",
            Box::new(StoreManager::new(MemoryStore::new())),
            None,
        )];
        #[cfg(unix)]
        {
            let dir = tempfile::tempdir().unwrap();
            let store = latchkey::FileStore::open(dir.path()).unwrap();
            out.push(("file", Box::new(StoreManager::new(store)), Some(dir)));
        }
        out
    }

    fn fresh(m: &dyn SessionManager) -> (String, Session) {
        let issued = m.create(NewSession::new().with_user("alice")).unwrap();
        let s = m.load(issued.token()).unwrap().session;
        (issued.token().to_owned(), s)
    }

    fn tickets() -> TicketManager {
        let key = TicketKey::try_from(&[5u8; 32][..]).unwrap();
        TicketManager::new("session", KeyRing::new(1, key)).unwrap()
    }

    #[test]
    fn a_checkpoint_survives_save_and_reload_in_every_store() {
        for (name, m, _dir) in managers() {
            let (token, mut s) = fresh(m.as_ref());
            s.advance_checkpoint("upload", None, cp(10, 1)).unwrap();
            s.accept_sequence(1).unwrap();
            m.save(&mut s).unwrap();
            let again = m.load(&token).unwrap().session;
            assert_eq!(again.checkpoint("upload"), Some(cp(10, 1)), "{name}");
            assert_eq!(again.last_sequence(), Ok(1), "{name}");
        }
    }

    #[test]
    fn an_advance_with_a_stale_expectation_is_refused_and_changes_nothing() {
        let m = StoreManager::new(MemoryStore::new());
        let (_, mut s) = fresh(&m);
        s.advance_checkpoint("upload", None, cp(10, 1)).unwrap();
        let before = s.data().encoded();
        // Expecting none where there is one, and the wrong one.
        assert_eq!(
            s.advance_checkpoint("upload", None, cp(20, 2)),
            Err(ResumeError::Stale {
                current: Some(cp(10, 1))
            })
        );
        assert_eq!(
            s.advance_checkpoint("upload", Some(&cp(10, 9)), cp(20, 2)),
            Err(ResumeError::Stale {
                current: Some(cp(10, 1))
            })
        );
        // Expecting one where there is none.
        assert_eq!(
            s.advance_checkpoint("other", Some(&cp(10, 1)), cp(20, 2)),
            Err(ResumeError::Stale { current: None })
        );
        assert_eq!(s.data().encoded(), before);
        s.advance_checkpoint("upload", Some(&cp(10, 1)), cp(20, 2))
            .unwrap();
        assert_eq!(s.checkpoint("upload"), Some(cp(20, 2)));
    }

    #[test]
    fn two_connections_resuming_one_session_cannot_both_advance() {
        for (name, m, _dir) in managers() {
            let (token, mut s) = fresh(m.as_ref());
            s.advance_checkpoint("upload", None, cp(100, 1)).unwrap();
            m.save(&mut s).unwrap();

            let mut a = m.load(&token).unwrap().session;
            let mut b = m.load(&token).unwrap().session;
            let seen = a.checkpoint("upload");
            assert_eq!(seen, b.checkpoint("upload"));
            a.advance_checkpoint("upload", seen.as_ref(), cp(200, 2))
                .unwrap();
            a.accept_sequence(1).unwrap();
            b.advance_checkpoint("upload", seen.as_ref(), cp(150, 3))
                .unwrap();
            b.accept_sequence(1).unwrap();
            m.save(&mut a).unwrap();
            // The loser's save is a conflict, never a silent overwrite.
            assert!(matches!(m.save(&mut b), Err(Error::Conflict)), "{name}");

            // It reloads and retries: its expectation is now stale, and so is
            // its request number.
            let mut b = m.load(&token).unwrap().session;
            assert_eq!(
                b.advance_checkpoint("upload", seen.as_ref(), cp(150, 3)),
                Err(ResumeError::Stale {
                    current: Some(cp(200, 2))
                }),
                "{name}"
            );
            assert_eq!(
                b.accept_sequence(1),
                Err(ResumeError::Replayed { last: 1, got: 1 })
            );
            assert_eq!(
                m.load(&token).unwrap().session.checkpoint("upload"),
                Some(cp(200, 2))
            );
        }
    }

    #[test]
    fn racing_threads_land_exactly_one_advance_per_expected_checkpoint() {
        let m = Arc::new(StoreManager::new(MemoryStore::new()));
        let (token, _) = fresh(m.as_ref());
        // Every thread loads, advances from what it read, saves; on a
        // conflict it reloads and tries again from the checkpoint in force.
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let (m, token) = (Arc::clone(&m), token.clone());
                std::thread::spawn(move || {
                    let mut landed = 0u64;
                    while landed < 25 {
                        let mut s = m.load(&token).unwrap().session;
                        let seen = s.checkpoint("n");
                        let next = cp(seen.map_or(0, |c| c.offset()) + 1, t);
                        s.advance_checkpoint("n", seen.as_ref(), next).unwrap();
                        match m.save(&mut s) {
                            Ok(_) => landed += 1,
                            Err(Error::Conflict) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // No lost update: 100 landed advances, 100 steps.
        let s = m.load(&token).unwrap().session;
        assert_eq!(s.checkpoint("n").map(|c| c.offset()), Some(100));
    }

    #[test]
    fn sequence_numbers_start_at_one_and_accept_only_the_next() {
        let m = StoreManager::new(MemoryStore::new());
        let (_, mut s) = fresh(&m);
        assert_eq!(s.last_sequence(), Ok(0));
        assert_eq!(
            s.accept_sequence(0),
            Err(ResumeError::Replayed { last: 0, got: 0 })
        );
        assert_eq!(
            s.accept_sequence(2),
            Err(ResumeError::OutOfOrder {
                expected: 1,
                got: 2
            })
        );
        assert!(!s.is_modified());
        for n in 1..=5 {
            s.accept_sequence(n).unwrap();
        }
        assert_eq!(
            s.accept_sequence(5),
            Err(ResumeError::Replayed { last: 5, got: 5 })
        );
        assert_eq!(
            s.accept_sequence(3),
            Err(ResumeError::Replayed { last: 5, got: 3 })
        );
        assert_eq!(
            s.accept_sequence(u64::MAX),
            Err(ResumeError::OutOfOrder {
                expected: 6,
                got: u64::MAX
            })
        );
        // At the end of the range every number is refused, without overflow.
        s.insert(SEQUENCE_KEY, &u64::MAX).unwrap();
        assert_eq!(
            s.accept_sequence(u64::MAX),
            Err(ResumeError::Replayed {
                last: u64::MAX,
                got: u64::MAX
            })
        );
    }

    #[test]
    fn a_retry_after_a_lost_ack_is_answered_already_applied() {
        let m = StoreManager::new(MemoryStore::new());
        let (token, mut s) = fresh(&m);
        s.accept_sequence(1).unwrap();
        m.save(&mut s).unwrap(); // applied; the ack is lost with the connection
        let mut s = m.load(&token).unwrap().session;
        let err = s.accept_sequence(1).unwrap_err();
        assert_eq!(err, ResumeError::Replayed { last: 1, got: 1 });
        assert!(!s.is_modified(), "nothing to save for a replay");
    }

    #[test]
    fn limits_are_typed_and_leave_the_session_unchanged() {
        let m = StoreManager::new(MemoryStore::new());
        let (_, mut s) = fresh(&m);
        let long = "n".repeat(MAX_CHECKPOINT_NAME_LEN + 1);
        assert_eq!(
            s.advance_checkpoint(&long, None, cp(0, 0)),
            Err(ResumeError::NameTooLong {
                len: MAX_CHECKPOINT_NAME_LEN + 1,
                limit: MAX_CHECKPOINT_NAME_LEN
            })
        );
        assert!(!s.is_modified());
        let exact = "n".repeat(MAX_CHECKPOINT_NAME_LEN);
        s.advance_checkpoint(&exact, None, cp(0, 0)).unwrap();
        for n in 1..MAX_CHECKPOINTS {
            s.advance_checkpoint(&n.to_string(), None, cp(0, 0))
                .unwrap();
        }
        let before = s.data().encoded();
        assert_eq!(
            s.advance_checkpoint("full", None, cp(0, 0)),
            Err(ResumeError::TooManyCheckpoints {
                limit: MAX_CHECKPOINTS
            })
        );
        assert_eq!(s.data().encoded(), before);
        // An existing one still advances when full; removing one makes room.
        s.advance_checkpoint("1", Some(&cp(0, 0)), cp(1, 1))
            .unwrap();
        assert!(s.remove_checkpoint("1"));
        s.advance_checkpoint("full", None, cp(0, 0)).unwrap();
    }

    #[test]
    fn foreign_values_under_the_reserved_keys_fail_closed() {
        let m = StoreManager::new(MemoryStore::new());
        let (_, mut s) = fresh(&m);
        s.insert(SEQUENCE_KEY, &"zero").unwrap();
        let unreadable = ResumeError::Unreadable { key: SEQUENCE_KEY };
        assert_eq!(s.last_sequence(), Err(unreadable));
        assert_eq!(s.accept_sequence(1), Err(unreadable));

        s.insert(CHECKPOINTS_KEY, &[1, 2]).unwrap();
        assert_eq!(s.checkpoint("upload"), None);
        assert_eq!(
            s.advance_checkpoint("upload", None, cp(1, 1)),
            Err(ResumeError::Unreadable {
                key: CHECKPOINTS_KEY
            })
        );
        s.insert(
            CHECKPOINTS_KEY,
            &serde_json::json!({ "upload": { "offset": -1 } }),
        )
        .unwrap();
        assert_eq!(s.checkpoint("upload"), None);
        assert_eq!(
            s.advance_checkpoint("upload", None, cp(1, 1)),
            Err(ResumeError::Unreadable {
                key: CHECKPOINTS_KEY
            })
        );
        // Clearing the session starts over.
        s.clear();
        s.accept_sequence(1).unwrap();
        s.advance_checkpoint("upload", None, cp(1, 1)).unwrap();
    }

    #[test]
    fn resume_state_ends_with_the_session() {
        for (name, m, _dir) in managers() {
            let (token, mut s) = fresh(m.as_ref());
            s.advance_checkpoint("upload", None, cp(10, 1)).unwrap();
            m.save(&mut s).unwrap();
            m.terminate(&s).unwrap();
            let err = m.load(&token).unwrap_err();
            assert_eq!(err.reason(), "terminated", "{name}");
        }
        // And with the idle timeout.
        let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
        let clock = Arc::new(ManualClock::new(t0));
        let m = StoreManager::new(MemoryStore::new()).with_clock(clock.clone());
        let (token, mut s) = fresh(&m);
        s.advance_checkpoint("upload", None, cp(10, 1)).unwrap();
        m.save(&mut s).unwrap();
        clock.advance(Duration::from_secs(365 * 86_400));
        assert!(m.load(&token).unwrap_err().is_rejection());
    }

    #[test]
    fn rotation_carries_the_resume_state() {
        let m = StoreManager::new(MemoryStore::new());
        let (_, mut s) = fresh(&m);
        s.advance_checkpoint("upload", None, cp(10, 1)).unwrap();
        s.accept_sequence(1).unwrap();
        m.save(&mut s).unwrap();
        let issued = m.change_privilege(&mut s).unwrap();
        let again = m.load(issued.token()).unwrap().session;
        assert_eq!(again.checkpoint("upload"), Some(cp(10, 1)));
        assert_eq!(again.last_sequence(), Ok(1));
    }

    /// What a plain `save` gives with tickets: the new ticket carries the
    /// state, but an older ticket still loads with its older counter, so
    /// replaying it is accepted. This is the documented weak guarantee.
    #[test]
    fn tickets_saved_plainly_do_not_stop_an_old_ticket_replay() {
        for m in [tickets(), tickets().with_revocation(MemoryStore::new())] {
            let old = m.create(NewSession::new()).unwrap();
            let mut s = m.load(old.token()).unwrap().session;
            s.accept_sequence(1).unwrap();
            let new = m.save(&mut s).unwrap().unwrap();
            // The newest ticket refuses the replay ...
            let mut s = m.load(new.token()).unwrap().session;
            assert_eq!(
                s.accept_sequence(1),
                Err(ResumeError::Replayed { last: 1, got: 1 })
            );
            // ... the old one accepts it again: only `commit_ticket` prevents it.
            let mut replay = m.load(old.token()).unwrap().session;
            assert_eq!(replay.accept_sequence(1), Ok(()));
            assert!(m.save(&mut replay).is_ok());
        }
    }

    #[test]
    fn commit_ticket_without_revocation_refuses_and_issues_nothing() {
        let m = tickets();
        let old = m.create(NewSession::new()).unwrap();
        let mut s = m.load(old.token()).unwrap().session;
        s.accept_sequence(1).unwrap();
        let err = commit_ticket(&m, &mut s).unwrap_err();
        assert!(matches!(err, Error::RevocationNotConfigured), "{err}");
        assert!(s.is_modified(), "the change is still unsaved");
        assert_eq!(s.fingerprint(), old.fingerprint());
    }

    #[test]
    fn commit_ticket_with_revocation_makes_each_ticket_single_use() {
        let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
        let clock = Arc::new(ManualClock::new(t0));
        let m = tickets()
            .with_clock(clock.clone())
            .with_revocation(MemoryStore::new());
        let old = m.create(NewSession::new().with_user("alice")).unwrap();

        // Two connections resume on the same ticket and both accept request 1.
        let mut a = m.load(old.token()).unwrap().session;
        let mut b = m.load(old.token()).unwrap().session;
        let seen = a.checkpoint("upload");
        for s in [&mut a, &mut b] {
            s.accept_sequence(1).unwrap();
            s.advance_checkpoint("upload", seen.as_ref(), cp(10, 1))
                .unwrap();
        }
        let new = commit_ticket(&m, &mut a).unwrap();
        // Only one commit from a ticket lands.
        assert!(matches!(commit_ticket(&m, &mut b), Err(Error::Conflict)));

        // The old ticket, with its old counter, is refused at once ...
        assert!(matches!(m.load(old.token()), Err(Error::Superseded)));
        // ... the new one carries the state and refuses the replay.
        let mut s = m.load(new.token()).unwrap().session;
        assert_eq!(s.checkpoint("upload"), Some(cp(10, 1)));
        assert_eq!(
            s.accept_sequence(1),
            Err(ResumeError::Replayed { last: 1, got: 1 })
        );
        // After the grace window the old ticket is reuse: the session ends.
        clock.advance(m.policy().rotation_grace());
        assert_eq!(
            m.load(old.token()).unwrap_err().reason(),
            "rotated_token_reused"
        );
        assert_eq!(m.load(new.token()).unwrap_err().reason(), "terminated");
    }

    #[test]
    fn a_terminated_ticket_session_cannot_resume_with_revocation() {
        let m = tickets().with_revocation(MemoryStore::new());
        let old = m.create(NewSession::new()).unwrap();
        let mut s = m.load(old.token()).unwrap().session;
        s.accept_sequence(1).unwrap();
        let new = commit_ticket(&m, &mut s).unwrap();
        let s = m.load(new.token()).unwrap().session;
        m.terminate(&s).unwrap();
        assert_eq!(m.load(new.token()).unwrap_err().reason(), "terminated");
        assert!(m.load(old.token()).unwrap_err().is_rejection());
    }
}
