//! `--store`: which store a command works on, and opening it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use latchkey::{FileStore, MemoryStore, Store};

use crate::error::Failure;

/// A store named on the command line.
#[derive(Clone)]
pub(crate) enum StoreSpec {
    /// `file:DIR`.
    File(PathBuf),
    /// `memory`: a fresh, empty store (commands can be tried out on it).
    Memory,
    /// `redis:URL` (or a bare `redis://` / `rediss://` URL).
    Redis(String),
}

/// Never shows a Redis URL: it may carry a password.
impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::File(dir) => write!(f, "File({})", dir.display()),
            StoreSpec::Memory => f.write_str("Memory"),
            StoreSpec::Redis(_) => f.write_str("Redis(<url>)"),
        }
    }
}

impl FromStr for StoreSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<StoreSpec, String> {
        if let Some(dir) = s.strip_prefix("file:") {
            if dir.is_empty() {
                return Err("`file:` needs a directory, e.g. file:/var/lib/app/sessions".into());
            }
            return Ok(StoreSpec::File(PathBuf::from(dir)));
        }
        if s == "memory" {
            return Ok(StoreSpec::Memory);
        }
        if s.starts_with("redis://") || s.starts_with("rediss://") {
            return Ok(StoreSpec::Redis(s.to_owned()));
        }
        if let Some(url) = s.strip_prefix("redis:") {
            return Ok(StoreSpec::Redis(url.to_owned()));
        }
        Err("expected file:DIR, memory or redis:URL".into())
    }
}

impl StoreSpec {
    /// How messages name the store: the directory, or just "the Redis
    /// store" (never its URL).
    pub(crate) fn describe(&self) -> String {
        match self {
            StoreSpec::File(dir) => format!("the file store {}", dir.display()),
            StoreSpec::Memory => "the memory store".to_owned(),
            StoreSpec::Redis(_) => "the Redis store".to_owned(),
        }
    }

    /// The file store's directory, or a usage error naming `command`.
    pub(crate) fn file_dir(&self, command: &str) -> Result<&PathBuf, Failure> {
        match self {
            StoreSpec::File(dir) => Ok(dir),
            _ => Err(Failure::Usage(format!(
                "`{command}` reads a file store's directory: use --store file:DIR"
            ))),
        }
    }

    /// Opens the store.
    ///
    /// A file store's directory must already exist: an operator's typo
    /// should not create an empty store and report that it has no sessions.
    pub(crate) fn open(&self) -> Result<OpenStore, Failure> {
        match self {
            StoreSpec::File(dir) => Ok(OpenStore::File(open_file_store(dir)?)),
            StoreSpec::Memory => Ok(OpenStore::Memory(MemoryStore::new())),
            StoreSpec::Redis(url) => open_redis(url),
        }
    }
}

/// Opens an existing file store directory.
pub(crate) fn open_file_store(dir: &std::path::Path) -> Result<FileStore, Failure> {
    if !dir.is_dir() {
        return Err(Failure::store(
            format!("cannot open the file store {}", dir.display()),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
        ));
    }
    FileStore::open(dir)
        .map_err(|e| Failure::store(format!("cannot open the file store {}", dir.display()), e))
}

#[cfg(feature = "redis")]
fn open_redis(url: &str) -> Result<OpenStore, Failure> {
    // The URL is not quoted in any message: it may carry a password.
    let store = latchkey::RedisStore::open(url)
        .map_err(|e| Failure::store("cannot open the Redis store", e))?;
    store
        .ping()
        .map_err(|e| Failure::store("cannot reach the Redis store", e))?;
    Ok(OpenStore::Redis(Box::new(store)))
}

#[cfg(not(feature = "redis"))]
fn open_redis(_url: &str) -> Result<OpenStore, Failure> {
    Err(Failure::Usage(
        "this latchkey was built without Redis support: rebuild it with `cargo install latchkey-cli --features redis` (or `cargo build -p latchkey-cli --features redis`)"
            .into(),
    ))
}

/// An open store of any kind.
#[derive(Debug)]
pub(crate) enum OpenStore {
    File(FileStore),
    Memory(MemoryStore),
    #[cfg(feature = "redis")]
    Redis(Box<latchkey::RedisStore>),
}

impl OpenStore {
    /// The store as a trait object, for a `StoreManager`.
    pub(crate) fn into_dyn(self) -> Box<dyn Store> {
        match self {
            OpenStore::File(s) => Box::new(s),
            OpenStore::Memory(s) => Box::new(s),
            #[cfg(feature = "redis")]
            OpenStore::Redis(s) => s,
        }
    }
}
