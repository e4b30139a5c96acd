//! `latchkey`: the operator's command-line tool for latchkey session stores
//! and tickets.
//!
//! Every command prints a table for people, or JSON with `--json`, and says
//! how it went in its exit status (see [`exit`]). No command ever prints a
//! session token, a ticket or a ticket key it was given: tokens and tickets
//! are named by fingerprint, and a key goes only where `keygen` was told to
//! write it.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod check;
mod error;
mod inspect;
mod keys;
mod output;
mod scan;
mod sessions;
mod store;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::store::StoreSpec;

/// Exit statuses, the same for every command.
pub(crate) mod exit {
    /// The command did what was asked, and the answer is yes.
    pub(crate) const OK: u8 = 0;
    /// The answer is no: not found, not valid, does not verify, the check
    /// found problems.
    pub(crate) const NO: u8 = 1;
    /// The command line or an input file is wrong (clap's own status for
    /// usage errors).
    pub(crate) const USAGE: u8 = 2;
    /// The store could not be opened, read or written.
    pub(crate) const STORE: u8 = 3;
    /// Another I/O failure: a key file could not be written.
    pub(crate) const IO: u8 = 4;
}

const EXIT_CODES: &str = "\
Exit status:
  0  done; the answer is yes (valid, verifies, found, clean)
  1  the answer is no: not found, invalid, does not verify, check found problems
  2  usage error: bad arguments, an unreadable or malformed input file
  3  the store is unavailable: cannot be opened, read or written
  4  another I/O failure (e.g. keygen cannot write --out)";

/// Operate latchkey session stores and tickets.
///
/// Tokens and tickets are secrets: pass them on standard input with `-`
/// (e.g. `pbpaste | latchkey inspect -`) so they stay out of your shell
/// history and the process list. No command ever prints one back.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, after_help = EXIT_CODES)]
struct Cli {
    /// Print JSON instead of tables (errors too, on standard output).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the shape of a session token, or decode (and verify) a ticket.
    ///
    /// A session token: whether it is a well-formed session ID, and if so
    /// its fingerprint (as log lines name it) and store key (its file
    /// name). A ticket (`lk1.…`): its header and claims, decoded without
    /// verification; with --key-file, whether it verifies, under which key
    /// id, or why not. The input is never printed back.
    #[command(after_help = EXIT_CODES)]
    Inspect(InspectArgs),
    /// List a user's live sessions.
    #[command(after_help = EXIT_CODES)]
    Sessions(SessionsArgs),
    /// End sessions: one by fingerprint, or all of a user's.
    #[command(after_help = EXIT_CODES)]
    Revoke(RevokeArgs),
    /// Delete expired records; for a file store, report what was skipped.
    #[command(after_help = EXIT_CODES)]
    Purge(StoreArgs),
    /// Make a new random ticket key.
    ///
    /// Prints one line of unpadded base64url, which
    /// `latchkey::TicketKey::from_base64` reads; with --id N the line is
    /// `N KEY`, a key-file line for `inspect --key-file`. With --out the
    /// key goes to a new file of mode 0600 and is not printed.
    #[command(after_help = EXIT_CODES)]
    Keygen(KeygenArgs),
    /// Count a file store's records by state, size and coming expiry.
    #[command(after_help = EXIT_CODES)]
    Stats(StatsArgs),
    /// Check a file store's directory for damage, read-only; --repair fixes
    /// what is safe to fix.
    #[command(after_help = EXIT_CODES)]
    Check(CheckArgs),
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// The session token or ticket, or `-` to read it from standard input
    /// (recommended: it keeps the secret out of shell history).
    #[arg(value_name = "TOKEN|TICKET|-", allow_hyphen_values = true)]
    input: String,
    /// Verify a ticket with these keys: one per line, `ID KEY` or a bare
    /// `KEY` (base64, as `latchkey keygen` prints); `#` starts a comment.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// The purpose the ticket was minted for: the cookie name.
    #[arg(long, default_value = "__Host-session")]
    purpose: String,
    /// Print the ticket's session data values too (reserved `latchkey.`
    /// keys, which hold CSRF secrets, stay redacted). By default only the
    /// data's keys are shown.
    #[arg(long)]
    show_data: bool,
}

#[derive(Debug, Args)]
struct StoreArgs {
    /// The store: `file:DIR`, `memory` (empty, for trying commands out) or
    /// `redis:URL` (needs a build with `--features redis`).
    #[arg(long, value_name = "STORE")]
    store: StoreSpec,
}

#[derive(Debug, Args)]
struct SessionsArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The user whose sessions to list.
    #[arg(long)]
    user: String,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).multiple(true).args(["fingerprint", "user"])))]
struct RevokeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// End the session with this fingerprint (12 hex digits). With a file
    /// store the user is found from the record; otherwise give --user too.
    #[arg(long)]
    fingerprint: Option<String>,
    /// The user: alone, end all of their sessions; with --fingerprint, only
    /// a session of this user is ended.
    #[arg(long)]
    user: Option<String>,
    /// With --user alone: keep the session with this fingerprint.
    #[arg(long, value_name = "FINGERPRINT", conflicts_with = "fingerprint")]
    except: Option<String>,
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// Write the key to this new file (mode 0600) instead of standard
    /// output. An existing file is never overwritten.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Write a key-file line `ID KEY` for this key ring id.
    #[arg(long)]
    id: Option<u32>,
}

#[derive(Debug, Args)]
struct StatsArgs {
    /// The store: `file:DIR` (stats read the file store's directory).
    #[arg(long, value_name = "STORE")]
    store: StoreSpec,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The file store's directory.
    dir: PathBuf,
    /// Fix what is safe: move corrupt and foreign session files to
    /// corrupt/, delete orphaned temporary files and unused lock files,
    /// rebuild the user index. Takes the store's locks, so it is safe
    /// beside running servers.
    #[arg(long)]
    repair: bool,
}

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e, &argv),
    };
    let json = cli.json;
    let result = match cli.command {
        Command::Inspect(a) => inspect::run(
            &a.input,
            a.key_file.as_deref(),
            &a.purpose,
            a.show_data,
            json,
        ),
        Command::Sessions(a) => sessions::list(&a.store.store, &a.user, json),
        Command::Revoke(a) => sessions::revoke(
            &a.store.store,
            a.fingerprint.as_deref(),
            a.user.as_deref(),
            a.except.as_deref(),
            json,
        ),
        Command::Purge(a) => sessions::purge(&a.store, json),
        Command::Keygen(a) => keys::keygen(a.out.as_deref(), a.id, json),
        Command::Stats(a) => scan::stats(&a.store, json),
        Command::Check(a) => check::run(&a.dir, a.repair, json),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            failure.report(json);
            ExitCode::from(failure.exit_code())
        }
    }
}

/// Prints clap's error (or help) and returns its status, with anything on
/// the command line shaped like a token or ticket taken out first: clap
/// quotes the arguments it trips over, and a token must never be printed.
fn usage_error(e: &clap::Error, argv: &[OsString]) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        // Help and version print to stdout and exit 0; nothing to scrub.
        let _ = e.print();
        return ExitCode::from(exit::OK);
    }
    let mut text = e.render().to_string();
    // Longest first, so no secret is left half-replaced inside another.
    let mut args: Vec<String> = argv
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| might_be_secret(a))
        .collect();
    args.sort_by_key(|a| std::cmp::Reverse(a.len()));
    for arg in &args {
        text = text.replace(arg.as_str(), "<redacted>");
    }
    eprint!("{text}");
    ExitCode::from(exit::USAGE)
}

/// Whether a command-line argument could be a session token or a ticket,
/// or a near miss of one: anything of 12 bytes or more but this tool's own
/// long options. (A path in an error message is redacted too: a small
/// price for never printing a token.)
fn might_be_secret(arg: &str) -> bool {
    let own_option = arg.strip_prefix("--").is_some_and(|name| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
    });
    arg.len() >= 12 && !own_option
}
