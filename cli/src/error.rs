//! Why a command failed, the exit status that says so, and how it prints.

use std::error::Error as StdError;
use std::fmt;

use crate::exit;

/// A command's failure. Messages name paths, users and fingerprints, never
/// a token, a ticket, a key or a Redis URL (which may carry a password).
#[derive(Debug)]
pub(crate) enum Failure {
    /// Nothing matched (exit 1).
    NotFound(String),
    /// The command line or an input file is wrong (exit 2).
    Usage(String),
    /// An input file could not be read (exit 2).
    Input {
        context: String,
        source: std::io::Error,
    },
    /// The store could not be opened, read or written (exit 3).
    Store {
        context: String,
        source: Box<dyn StdError + Send + Sync>,
    },
    /// Any other I/O failure (exit 4).
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Failure {
    pub(crate) fn store(
        context: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Failure {
        Failure::Store {
            context: context.into(),
            source: source.into(),
        }
    }

    /// A store-layer error from the library: a backend failure, or (for an
    /// error that is about the request rather than the store) a usage one.
    pub(crate) fn from_latchkey(context: &str, e: latchkey::Error) -> Failure {
        match e {
            latchkey::Error::Store(e) => Failure::store(context, e),
            other if other.is_backend_failure() => Failure::store(context, other),
            other => Failure::Usage(format!("{context}: {}", chain(&other))),
        }
    }

    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Failure::NotFound(_) => exit::NO,
            Failure::Usage(_) | Failure::Input { .. } => exit::USAGE,
            Failure::Store { .. } => exit::STORE,
            Failure::Io { .. } => exit::IO,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Failure::NotFound(_) => "not_found",
            Failure::Usage(_) | Failure::Input { .. } => "usage",
            Failure::Store { .. } => "store_unavailable",
            Failure::Io { .. } => "io",
        }
    }

    /// Prints the failure: a line on stderr, or with `--json` an
    /// `{"error": {"kind", "message"}}` object on stdout.
    pub(crate) fn report(&self, json: bool) {
        if json {
            let v = serde_json::json!({
                "error": { "kind": self.kind(), "message": self.to_string() }
            });
            println!("{v}");
        } else {
            eprintln!("latchkey: {self}");
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NotFound(m) | Failure::Usage(m) => f.write_str(m),
            Failure::Input { context, source } | Failure::Io { context, source } => {
                write!(f, "{context}: {}", chain(source))
            }
            Failure::Store { context, source } => write!(f, "{context}: {}", chain(&**source)),
        }
    }
}

/// An error and its sources, joined by ": ".
pub(crate) fn chain(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let next = c.to_string();
        // Some errors repeat their source in their own message.
        if !s.ends_with(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = c.source();
    }
    s
}
