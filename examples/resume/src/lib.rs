//! A resumable file upload over TCP on latchkey sessions.
//!
//! The session outlives the connection: the client logs in once, keeps the
//! token, and every connection starts by presenting it. The server keeps
//! the upload's progress in the session as a [`Checkpoint`] (offset and a
//! running SHA-256 chain) and numbers requests with
//! [`Session::accept_sequence`](latchkey::Session::accept_sequence), so a
//! client that loses its connection reconnects, asks where it stopped, and
//! carries on; a replayed chunk is never written twice.
//!
//! # Protocol
//!
//! One request per line, one reply per line:
//!
//! | client | server |
//! |---|---|
//! | `LOGIN <user> <password>` | `TOKEN <token>` or `ERR bad_credentials` |
//! | `HELLO <token>` | `AT <offset> <digest> <last-seq>` or `ERR <reason>` |
//! | `CHUNK <seq> <len>` then `len` bytes | `ACK <seq> <offset> <digest>`, `APPLIED <last-seq> <offset> <digest>` (already applied: a replay or a retry), or `ERR <reason> …` |
//! | `LOGOUT` | `BYE` |
//!
//! `<digest>` is 64 hex digits: the chain `d' = SHA-256(d ‖ chunk)` from
//! 32 zero bytes, which each side computes, so a client resuming checks that
//! the server holds exactly what it sent. `<reason>` is
//! [`Error::reason`](latchkey::Error::reason) for a session refused
//! (`terminated`, `unknown`, `idle_expired`, …).
//!
//! This is a demonstration: the token travels in clear over loopback (use
//! TLS anywhere else), passwords sit in a map (store a password hash), and
//! one lock serializes the uploads of this process (several processes on
//! one store would also need a lock per upload file; the versioned save
//! already keeps their session state consistent).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;

use latchkey::{Checkpoint, Error, NewSession, ResumeError, SessionManager};
use sha2::{Digest as _, Sha256};

/// The name of the upload's checkpoint in the session.
pub const CHECKPOINT: &str = "upload";
/// The largest chunk the server reads.
pub const MAX_CHUNK: usize = 64 * 1024;
/// The longest request line the server reads.
const MAX_LINE: u64 = 256;

/// The digest chain: the digest after `chunk`, given the digest before it.
pub fn chain(prev: &[u8; 32], chunk: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(prev)
        .chain_update(chunk)
        .finalize()
        .into()
}

/// The digest chain over `data` sent in chunks of `chunk_size`: what the
/// server's checkpoint at `data.len()` must say.
pub fn chain_over(data: &[u8], chunk_size: usize) -> [u8; 32] {
    data.chunks(chunk_size)
        .fold([0; 32], |digest, chunk| chain(&digest, chunk))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Reads one line of at most [`MAX_LINE`] bytes, without its end;
/// `Ok(None)` at the end of the stream.
fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = String::new();
    let n = reader.by_ref().take(MAX_LINE).read_line(&mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with('\n') {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
    }
    line.pop();
    Ok(Some(line))
}

/// The upload server: users, a session manager, a directory for uploads.
#[derive(Debug)]
pub struct Server {
    manager: Arc<dyn SessionManager>,
    users: HashMap<String, String>,
    dir: PathBuf,
    /// Held from loading the session to saving it for every chunk, so two
    /// connections of this process never interleave writes to one file.
    uploads: Mutex<()>,
}

impl Server {
    /// A server keeping sessions in `manager` and uploads in `dir`.
    pub fn new(manager: Arc<dyn SessionManager>, dir: impl Into<PathBuf>) -> Server {
        Server {
            manager,
            users: HashMap::new(),
            dir: dir.into(),
            uploads: Mutex::new(()),
        }
    }

    /// Adds a user.
    #[must_use]
    pub fn with_user(mut self, user: &str, password: &str) -> Server {
        self.users.insert(user.into(), password.into());
        self
    }

    /// Where the upload of `user` is kept.
    pub fn upload_path(&self, user: &str) -> PathBuf {
        self.dir.join(format!("{user}.upload"))
    }

    /// Listens on a loopback port the OS picks, serves each connection on
    /// a thread of its own, and returns the address.
    ///
    /// # Errors
    /// If the port cannot be bound.
    pub fn spawn(self: Arc<Self>) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let server = Arc::clone(&self);
                thread::spawn(move || {
                    // A connection that drops mid-request just ends: the
                    // request was not applied and the session is as saved.
                    let _ = server.serve(stream);
                });
            }
        });
        Ok(addr)
    }

    /// Serves one connection until it closes.
    fn serve(&self, stream: TcpStream) -> io::Result<()> {
        let mut out = stream.try_clone()?;
        let mut input = BufReader::new(stream);
        let mut conn = Connection::default();
        while let Some(line) = read_line(&mut input)? {
            let reply = self.request(&mut conn, &line, &mut input)?;
            writeln!(out, "{reply}")?;
            if reply == "BYE" {
                break;
            }
        }
        Ok(())
    }

    fn request(
        &self,
        conn: &mut Connection,
        line: &str,
        input: &mut impl BufRead,
    ) -> io::Result<String> {
        let words: Vec<&str> = line.split(' ').collect();
        Ok(match words.as_slice() {
            ["LOGIN", user, password] => self.login(conn, user, password),
            ["HELLO", token] => self.hello(conn, token),
            ["CHUNK", seq, len] => {
                let (Ok(seq), Ok(len)) = (seq.parse::<u64>(), len.parse::<usize>()) else {
                    return Ok("ERR bad_request".into());
                };
                if len > MAX_CHUNK {
                    return Ok("ERR chunk_too_large".into());
                }
                let mut data = vec![0; len];
                // A short read (the connection dropped) ends the
                // connection here, before anything is applied.
                input.read_exact(&mut data)?;
                self.chunk(conn, seq, &data)?
            }
            ["LOGOUT"] => {
                if let Some(token) = &conn.token
                    && let Ok(loaded) = self.manager.load(token)
                {
                    let _ = self.manager.terminate(&loaded.session);
                }
                "BYE".into()
            }
            _ => "ERR bad_request".into(),
        })
    }

    fn login(&self, conn: &mut Connection, user: &str, password: &str) -> String {
        let known = self.users.get(user).is_some_and(|p| {
            subtle::ConstantTimeEq::ct_eq(p.as_bytes(), password.as_bytes()).into()
        });
        if !known {
            return "ERR bad_credentials".into();
        }
        match self.manager.create(NewSession::new().with_user(user)) {
            Ok(issued) => {
                conn.token = Some(issued.token().to_owned());
                conn.known = None;
                format!("TOKEN {}", issued.token())
            }
            Err(e) => format!("ERR {}", e.reason()),
        }
    }

    /// Binds the connection to the session of `token` and says where its
    /// upload stands.
    fn hello(&self, conn: &mut Connection, token: &str) -> String {
        let session = match self.manager.load(token) {
            Ok(loaded) => loaded.session,
            Err(e) => return format!("ERR {}", e.reason()),
        };
        let last = match session.last_sequence() {
            Ok(last) => last,
            Err(_) => return "ERR unreadable".into(),
        };
        conn.token = Some(token.to_owned());
        conn.known = session.checkpoint(CHECKPOINT);
        let (offset, digest) = position(conn.known);
        format!("AT {offset} {} {last}", hex(&digest))
    }

    fn chunk(&self, conn: &mut Connection, seq: u64, data: &[u8]) -> io::Result<String> {
        let Some(token) = conn.token.clone() else {
            return Ok("ERR no_session".into());
        };
        let _uploads = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
        let mut session = match self.manager.load(&token) {
            Ok(loaded) => loaded.session,
            Err(e) => return Ok(format!("ERR {}", e.reason())),
        };
        match session.accept_sequence(seq) {
            Ok(()) => {}
            // Already applied (a replay, or a retry whose ack was lost):
            // never apply it twice; answer with where the upload stands.
            Err(ResumeError::Replayed { last, .. }) => {
                let (offset, digest) = position(session.checkpoint(CHECKPOINT));
                return Ok(format!("APPLIED {last} {offset} {}", hex(&digest)));
            }
            Err(ResumeError::OutOfOrder { expected, .. }) => {
                return Ok(format!("ERR out_of_order {expected}"));
            }
            Err(_) => return Ok("ERR unreadable".into()),
        }
        // Compare-and-set from the checkpoint this connection last saw: if
        // another connection moved it, this one must resume again.
        let (offset, digest) = position(conn.known);
        let next = Checkpoint::new(offset + data.len() as u64, chain(&digest, data));
        if let Err(e) = session.advance_checkpoint(CHECKPOINT, conn.known.as_ref(), next) {
            return Ok(match e {
                ResumeError::Stale { .. } => "ERR stale".into(),
                _ => "ERR unreadable".into(),
            });
        }
        let Some(user) = session.user().map(str::to_owned) else {
            return Ok("ERR no_user".into());
        };
        // The file first, the checkpoint after: a crash between them leaves
        // bytes past the checkpoint, which the resumed upload overwrites.
        write_at(&self.upload_path(&user), offset, data)?;
        match self.manager.save(&mut session) {
            Ok(_) => {}
            // Another process saved first: this connection's view is stale.
            Err(Error::Conflict) => return Ok("ERR conflict".into()),
            Err(e) => return Ok(format!("ERR {}", e.reason())),
        }
        conn.known = Some(next);
        Ok(format!(
            "ACK {seq} {} {}",
            next.offset(),
            hex(next.digest())
        ))
    }
}

/// What one connection knows: its session and the checkpoint it last saw.
#[derive(Default)]
struct Connection {
    token: Option<String>,
    known: Option<Checkpoint>,
}

/// The offset and digest a checkpoint stands for; none is the start.
fn position(checkpoint: Option<Checkpoint>) -> (u64, [u8; 32]) {
    checkpoint.map_or((0, [0; 32]), |c| (c.offset(), *c.digest()))
}

/// Writes `data` at `offset` and drops anything after it.
fn write_at(path: &Path, offset: u64, data: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    file.set_len(offset)?;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(data)?;
    file.sync_data()
}

/// Where the server says an upload stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Bytes stored.
    pub offset: u64,
    /// The digest chain over them.
    pub digest: [u8; 32],
    /// The last request number applied.
    pub last_seq: u64,
}

/// The server's answer to a chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Applied: the upload now stands at `offset`.
    Ack {
        /// The request number.
        seq: u64,
        /// Bytes stored.
        offset: u64,
        /// The digest chain over them.
        digest: [u8; 32],
    },
    /// Not applied, because it was already: the upload stands here.
    AlreadyApplied(Position),
    /// Refused, with the server's reason (`out_of_order 6`, `stale`, …).
    Refused(String),
}

/// One client connection.
#[derive(Debug)]
pub struct Client {
    out: TcpStream,
    input: BufReader<TcpStream>,
}

impl Client {
    /// Connects to the server.
    ///
    /// # Errors
    /// If the connection fails.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<Client> {
        let out = TcpStream::connect(addr)?;
        let input = BufReader::new(out.try_clone()?);
        Ok(Client { out, input })
    }

    fn call(&mut self, line: &str) -> io::Result<String> {
        writeln!(self.out, "{line}")?;
        self.reply()
    }

    fn reply(&mut self) -> io::Result<String> {
        read_line(&mut self.input)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "server closed"))
    }

    /// Logs in: `Ok(Ok(token))`, or `Ok(Err(reason))` if refused.
    ///
    /// # Errors
    /// I/O errors.
    pub fn login(&mut self, user: &str, password: &str) -> io::Result<Result<String, String>> {
        let reply = self.call(&format!("LOGIN {user} {password}"))?;
        Ok(match reply.strip_prefix("TOKEN ") {
            Some(token) => Ok(token.to_owned()),
            None => Err(refusal(&reply)),
        })
    }

    /// Presents the token: where the upload stands, or the reason the
    /// session was refused.
    ///
    /// # Errors
    /// I/O errors, or a reply that does not parse.
    pub fn hello(&mut self, token: &str) -> io::Result<Result<Position, String>> {
        let reply = self.call(&format!("HELLO {token}"))?;
        match reply.strip_prefix("AT ") {
            Some(rest) => parse_position(rest).map(Ok),
            None => Ok(Err(refusal(&reply))),
        }
    }

    /// Sends chunk `seq` and waits for the answer.
    ///
    /// # Errors
    /// I/O errors, or a reply that does not parse.
    pub fn send_chunk(&mut self, seq: u64, data: &[u8]) -> io::Result<Reply> {
        writeln!(self.out, "CHUNK {seq} {}", data.len())?;
        self.out.write_all(data)?;
        let reply = self.reply()?;
        let words: Vec<&str> = reply.split(' ').collect();
        match words.as_slice() {
            ["ACK", seq, offset, digest] => {
                let p = parse_position(&format!("{offset} {digest} {seq}"))?;
                Ok(Reply::Ack {
                    seq: p.last_seq,
                    offset: p.offset,
                    digest: p.digest,
                })
            }
            ["APPLIED", last, offset, digest] => Ok(Reply::AlreadyApplied(parse_position(
                &format!("{offset} {digest} {last}"),
            )?)),
            _ => Ok(Reply::Refused(refusal(&reply))),
        }
    }

    /// Starts chunk `seq` but sends only its first `cut` bytes, then drops
    /// the connection: a connection lost mid-request.
    ///
    /// # Errors
    /// I/O errors.
    pub fn drop_mid_chunk(mut self, seq: u64, data: &[u8], cut: usize) -> io::Result<()> {
        writeln!(self.out, "CHUNK {seq} {}", data.len())?;
        self.out.write_all(&data[..cut.min(data.len())])?;
        self.out.shutdown(std::net::Shutdown::Both)
    }

    /// Ends the session: the token is dead afterwards.
    ///
    /// # Errors
    /// I/O errors, or a reply other than `BYE`.
    pub fn logout(&mut self) -> io::Result<()> {
        match self.call("LOGOUT")?.as_str() {
            "BYE" => Ok(()),
            other => Err(io::Error::other(format!("unexpected reply {other:?}"))),
        }
    }
}

fn refusal(reply: &str) -> String {
    reply.strip_prefix("ERR ").unwrap_or(reply).to_owned()
}

fn parse_position(text: &str) -> io::Result<Position> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("bad reply {text:?}"));
    let words: Vec<&str> = text.split(' ').collect();
    let [offset, digest, last] = words.as_slice() else {
        return Err(bad());
    };
    Ok(Position {
        offset: offset.parse().map_err(|_| bad())?,
        digest: parse_hex(digest).ok_or_else(bad)?,
        last_seq: last.parse().map_err(|_| bad())?,
    })
}

/// Uploads `data` from where the server says it stands, in chunks of
/// `chunk_size`, on a new connection presenting `token`. It checks that
/// the server's digest matches what this client sent up to there, then
/// sends the rest, numbering chunks after the server's last one. With
/// `stop_after = Some(n)` it sends `n` chunks, then starts one more and
/// drops the connection halfway through it.
///
/// Returns where the upload stands when it stops.
///
/// # Errors
/// I/O errors; `InvalidData` if the server's checkpoint is not on a chunk
/// boundary or its digest differs from this client's; `Other` with the
/// server's reason if it refuses the session or a chunk.
pub fn upload(
    addr: SocketAddr,
    token: &str,
    data: &[u8],
    chunk_size: usize,
    stop_after: Option<usize>,
) -> io::Result<Position> {
    let mut client = Client::connect(addr)?;
    let at = client.hello(token)?.map_err(io::Error::other)?;
    let offset = usize::try_from(at.offset).map_err(io::Error::other)?;
    if offset > data.len()
        || offset % chunk_size != 0
        || chain_over(&data[..offset], chunk_size) != at.digest
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the server's checkpoint is not what this client sent",
        ));
    }
    let mut position = at;
    for (i, chunk) in data[offset..].chunks(chunk_size).enumerate() {
        let seq = position.last_seq + 1;
        if stop_after == Some(i) {
            client.drop_mid_chunk(seq, chunk, chunk.len() / 2)?;
            return Ok(position);
        }
        match client.send_chunk(seq, chunk)? {
            Reply::Ack {
                seq,
                offset,
                digest,
            } => {
                position = Position {
                    offset,
                    digest,
                    last_seq: seq,
                }
            }
            other => return Err(io::Error::other(format!("chunk {seq}: {other:?}"))),
        }
    }
    Ok(position)
}

/// The SHA-256 of a whole file's content.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Reads back what the server stored for `user`.
///
/// # Errors
/// If the file cannot be read.
pub fn stored(server: &Server, user: &str) -> io::Result<Vec<u8>> {
    std::fs::read(server.upload_path(user))
}
