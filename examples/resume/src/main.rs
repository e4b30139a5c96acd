//! A demonstration on loopback: log in, upload part of a file, lose the
//! connection, resume with the token, replay a chunk, finish, log out.

use std::error::Error;
use std::sync::Arc;

use latchkey::{MemoryStore, StoreManager};
use latchkey_resume_example::{Client, Reply, Server, chain_over, hex, sha256, stored, upload};

const CHUNK: usize = 4096;

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("latchkey-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let server = Arc::new(
        Server::new(Arc::new(StoreManager::new(MemoryStore::new())), &dir)
            .with_user("alice", "wonderland"),
    );
    let addr = Arc::clone(&server).spawn()?;
    println!("server on {addr}, uploads in {}", dir.display());

    let file: Vec<u8> = (0..10 * CHUNK + 123)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    println!("file: {} bytes, sha256 {}", file.len(), hex(&sha256(&file)));

    let token = Client::connect(addr)?
        .login("alice", "wonderland")?
        .map_err(|reason| format!("login refused: {reason}"))?;
    println!("logged in; token kept by the client");

    let at = upload(addr, &token, &file, CHUNK, Some(4))?;
    println!(
        "connection 1: {} chunks acknowledged, then dropped mid-chunk",
        at.last_seq
    );

    let mut client = Client::connect(addr)?;
    let at = client
        .hello(&token)?
        .map_err(|r| format!("resume refused: {r}"))?;
    println!(
        "connection 2: server stands at offset {} after request {}; digest matches ours: {}",
        at.offset,
        at.last_seq,
        at.digest == chain_over(&file[..at.offset as usize], CHUNK)
    );
    let replay = client.send_chunk(2, &file[CHUNK..2 * CHUNK])?;
    match replay {
        Reply::AlreadyApplied(p) => println!(
            "replayed request 2: refused as already applied (last {}), nothing written",
            p.last_seq
        ),
        other => println!("replayed request 2: unexpected {other:?}"),
    }
    drop(client);

    let done = upload(addr, &token, &file, CHUNK, None)?;
    println!(
        "connection 3: resumed and finished at offset {}",
        done.offset
    );
    let on_server = stored(&server, "alice")?;
    println!(
        "stored file sha256 {} ({})",
        hex(&sha256(&on_server)),
        if on_server == file {
            "equal to the original"
        } else {
            "DIFFERENT"
        }
    );

    let mut client = Client::connect(addr)?;
    client.hello(&token)?.map_err(|r| format!("refused: {r}"))?;
    client.logout()?;
    println!("logged out");
    let refused = Client::connect(addr)?.hello(&token)?;
    println!("resume after logout: {refused:?}");

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
