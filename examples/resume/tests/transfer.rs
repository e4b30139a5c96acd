//! The whole scenario over loopback, deterministically: every step waits
//! for the server's answer, and the dropped connection is dropped by the
//! client itself (mid-chunk, or right after an acknowledgement it then
//! ignores), so no step depends on timing.

use std::net::SocketAddr;
use std::sync::Arc;

use latchkey::{MemoryStore, SessionManager, StoreManager};
use latchkey_resume_example::{
    Client, Position, Reply, Server, chain, chain_over, sha256, stored, upload,
};

const CHUNK: usize = 1000;
const USER: &str = "alice";
const PASSWORD: &str = "wonderland";

/// 10½ chunks of bytes that differ from chunk to chunk.
fn file() -> Vec<u8> {
    (0..10 * CHUNK + CHUNK / 2)
        .map(|i| (i.wrapping_mul(7919) >> 3) as u8)
        .collect()
}

fn start(manager: Arc<dyn SessionManager>, dir: &std::path::Path) -> (Arc<Server>, SocketAddr) {
    let server = Arc::new(Server::new(manager, dir).with_user(USER, PASSWORD));
    let addr = Arc::clone(&server).spawn().unwrap();
    (server, addr)
}

fn scenario(manager: Arc<dyn SessionManager>) {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = start(manager, dir.path());
    let file = file();

    // Authenticate: a wrong password gets no session.
    let mut client = Client::connect(addr).unwrap();
    assert_eq!(
        client.login(USER, "guess").unwrap(),
        Err("bad_credentials".to_owned())
    );
    let token = client.login(USER, PASSWORD).unwrap().unwrap();
    drop(client);

    // Connection 1: four chunks acknowledged, the fifth cut halfway.
    let at = upload(addr, &token, &file, CHUNK, Some(4)).unwrap();
    assert_eq!((at.offset, at.last_seq), (4 * CHUNK as u64, 4));

    // Connection 2: the half chunk was never applied; the checkpoint is
    // where the acknowledgements said, with the digest of what was sent.
    let mut client = Client::connect(addr).unwrap();
    let at = client.hello(&token).unwrap().unwrap();
    assert_eq!(
        at,
        Position {
            offset: 4 * CHUNK as u64,
            digest: chain_over(&file[..4 * CHUNK], CHUNK),
            last_seq: 4,
        }
    );
    assert_eq!(stored(&server, USER).unwrap(), &file[..4 * CHUNK]);
    // Chunk 5 is applied, but this client "loses" the acknowledgement:
    // it drops the connection and retries on a new one.
    let fifth = &file[4 * CHUNK..5 * CHUNK];
    assert!(matches!(
        client.send_chunk(5, fifth).unwrap(),
        Reply::Ack { seq: 5, .. }
    ));
    drop(client);

    // Connection 3: the retry with the same number is answered "already
    // applied", with where the upload stands; nothing is written twice.
    let mut client = Client::connect(addr).unwrap();
    let at = client.hello(&token).unwrap().unwrap();
    assert_eq!((at.offset, at.last_seq), (5 * CHUNK as u64, 5));
    let applied = Position {
        offset: 5 * CHUNK as u64,
        digest: chain(&chain_over(&file[..4 * CHUNK], CHUNK), fifth),
        last_seq: 5,
    };
    assert_eq!(
        client.send_chunk(5, fifth).unwrap(),
        Reply::AlreadyApplied(applied)
    );
    // A replay of an older chunk is refused the same way, and a chunk
    // that skips ahead is refused as out of order.
    assert_eq!(
        client.send_chunk(2, &file[CHUNK..2 * CHUNK]).unwrap(),
        Reply::AlreadyApplied(applied)
    );
    assert_eq!(
        client.send_chunk(9, &file[..CHUNK]).unwrap(),
        Reply::Refused("out_of_order 6".into())
    );
    assert_eq!(stored(&server, USER).unwrap(), &file[..5 * CHUNK]);
    drop(client);

    // Connection 4: resume from the checkpoint and finish.
    let done = upload(addr, &token, &file, CHUNK, None).unwrap();
    assert_eq!(done.offset, file.len() as u64);
    assert_eq!(done.last_seq, 11);
    assert_eq!(done.digest, chain_over(&file, CHUNK));
    assert_eq!(sha256(&stored(&server, USER).unwrap()), sha256(&file));

    // Logout: the token can no longer resume, and says why.
    let mut client = Client::connect(addr).unwrap();
    client.hello(&token).unwrap().unwrap();
    client.logout().unwrap();
    let refused = Client::connect(addr).unwrap().hello(&token).unwrap();
    assert_eq!(refused, Err("terminated".to_owned()));
    let err = upload(addr, &token, &file, CHUNK, None).unwrap_err();
    assert_eq!(err.to_string(), "terminated");
}

#[test]
fn an_upload_resumes_across_reconnects_over_the_memory_store() {
    scenario(Arc::new(StoreManager::new(MemoryStore::new())));
}

#[cfg(unix)]
#[test]
fn an_upload_resumes_across_reconnects_over_a_file_store() {
    let sessions = tempfile::tempdir().unwrap();
    let store = latchkey::FileStore::open(sessions.path()).unwrap();
    scenario(Arc::new(StoreManager::new(store)));
}

#[test]
fn a_second_connection_on_a_stale_checkpoint_cannot_advance() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = start(Arc::new(StoreManager::new(MemoryStore::new())), dir.path());
    let file = file();
    let token = Client::connect(addr)
        .unwrap()
        .login(USER, PASSWORD)
        .unwrap()
        .unwrap();
    // Both connections resume at the start ...
    let mut a = Client::connect(addr).unwrap();
    let mut b = Client::connect(addr).unwrap();
    assert_eq!(a.hello(&token).unwrap().unwrap().offset, 0);
    assert_eq!(b.hello(&token).unwrap().unwrap().offset, 0);
    // ... the first one advances ...
    assert!(matches!(
        a.send_chunk(1, &file[..CHUNK]).unwrap(),
        Reply::Ack { seq: 1, .. }
    ));
    // ... and the second, still at the start, is refused even with the
    // next number: its checkpoint is stale. It must resume again.
    assert_eq!(
        b.send_chunk(2, &file[CHUNK..2 * CHUNK]).unwrap(),
        Reply::Refused("stale".into())
    );
    assert_eq!(stored(&server, USER).unwrap(), &file[..CHUNK]);
    assert_eq!(b.hello(&token).unwrap().unwrap().offset, CHUNK as u64);
    assert!(matches!(
        b.send_chunk(2, &file[CHUNK..2 * CHUNK]).unwrap(),
        Reply::Ack { seq: 2, .. }
    ));
}
