//! `latchkey check DIR [--repair]`: a file store's consistency, read-only;
//! with `--repair`, the safe fixes.
//!
//! The check reads the directory without locks, so a write in progress on
//! a running server can show as a temporary file for an instant; a finding
//! that stays across two checks is real. The repair goes through the
//! library's own purge, which takes the store's locks, so it is safe beside
//! running servers.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use latchkey::Timestamp;
use latchkey::store::RecordState;
use serde_json::json;

use crate::error::Failure;
use crate::exit;
use crate::output;
use crate::scan::{self, Content, IndexContent, Layout, OddityKind};
use crate::store::open_file_store;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Severity {
    /// The store is damaged or inconsistent: the check fails.
    Problem,
    /// Unexpected but harmless to the store: reported, the check passes.
    Note,
}

/// What `--repair` does about a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fix {
    /// The library's purge fixes it (moves aside, deletes a temp file,
    /// rebuilds or prunes the index).
    Purge,
    /// The repair deletes the unused lock file.
    RemoveLock,
    /// Left for an operator.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    severity: Severity,
    code: &'static str,
    /// The path under the store's directory.
    path: String,
    detail: String,
    fix: Fix,
}

impl Finding {
    fn problem(
        code: &'static str,
        path: impl Into<String>,
        detail: impl Into<String>,
        fix: Fix,
    ) -> Finding {
        Finding {
            severity: Severity::Problem,
            code,
            path: path.into(),
            detail: detail.into(),
            fix,
        }
    }

    fn note(
        code: &'static str,
        path: impl Into<String>,
        detail: impl Into<String>,
        fix: Fix,
    ) -> Finding {
        Finding {
            severity: Severity::Note,
            code,
            path: path.into(),
            detail: detail.into(),
            fix,
        }
    }

    fn key(&self) -> (&'static str, &str) {
        (self.code, &self.path)
    }
}

/// Checks the directory's own permissions, as `FileStore::open` would
/// refuse them.
fn check_root(root: &Path, findings: &mut Vec<Finding>) {
    let Ok(meta) = fs::metadata(root) else {
        return;
    };
    if meta.permissions().mode() & 0o022 != 0 {
        findings.push(Finding::problem(
            "insecure_directory",
            ".",
            "the directory is writable by group or others: anyone who can write it can forge sessions, and the library refuses to open it (chmod 700)",
            Fix::None,
        ));
    }
    // Our own user id, without unsafe code: the owner of /proc/self.
    if let Ok(me) = fs::metadata("/proc/self").map(|m| m.uid())
        && me != meta.uid()
    {
        findings.push(Finding::problem(
            "foreign_owner",
            ".",
            "another user owns the directory; the library refuses to open it",
            Fix::None,
        ));
    }
}

/// Every finding in `layout`, problems first.
fn findings(root: &Path, layout: &Layout) -> Vec<Finding> {
    let mut out = Vec::new();
    check_root(root, &mut out);
    for dir in &layout.missing_dirs {
        // Harmless: opening the store (and so any server, or --repair)
        // creates it.
        out.push(Finding::note(
            "missing_directory",
            *dir,
            "a directory of the layout is missing (the store recreates it when opened)",
            Fix::Purge,
        ));
    }
    // Sessions.
    let mut records = HashMap::new();
    for file in &layout.sessions {
        match &file.content {
            Content::Record(r) => {
                records.insert(file.key, r);
            }
            Content::Corrupt => out.push(Finding::problem(
                "corrupt_session",
                &file.rel,
                "the file does not decode as a record (empty, truncated, or another format version); that session is refused",
                Fix::Purge,
            )),
            Content::Foreign => out.push(Finding::problem(
                "foreign_session",
                &file.rel,
                "not a latchkey session file (no `latchkey-session` header) at a session's name",
                Fix::Purge,
            )),
            Content::NotRegular => out.push(Finding::problem(
                "not_regular_file",
                &file.rel,
                "a directory, symlink, FIFO or device at a session's name",
                Fix::Purge,
            )),
            Content::Unreadable(e) => out.push(Finding::problem(
                "unreadable",
                &file.rel,
                format!("cannot be read: {e}"),
                Fix::None,
            )),
        }
    }
    // The user index against the records.
    let mut indexed: HashMap<&str, (&str, BTreeSet<latchkey::StoreKey>)> = HashMap::new();
    let mut broken_indexes: HashSet<[u8; 32]> = HashSet::new();
    for index in &layout.indexes {
        match &index.content {
            IndexContent::Valid { user, keys } => {
                if scan::user_hash(user) != index.hash {
                    out.push(Finding::problem(
                        "misnamed_index",
                        &index.rel,
                        "the index file's name is not the SHA-256 of the user it lists; the store never reads it",
                        Fix::None,
                    ));
                    continue;
                }
                indexed.insert(user, (&index.rel, keys.iter().copied().collect()));
                for key in keys {
                    let stale = match records.get(key) {
                        Some(r) => r.user() != Some(user.as_str()),
                        // A corrupt record is stale too (purge prunes it);
                        // an unreadable one must stay listed.
                        None => !layout
                            .sessions
                            .iter()
                            .any(|f| f.key == *key && matches!(f.content, Content::Unreadable(_))),
                    };
                    if stale {
                        out.push(Finding::problem(
                            "stale_index_entry",
                            &index.rel,
                            format!(
                                "lists session {} whose record is gone, not live, or another user's (harmless: listings filter it)",
                                key.fingerprint()
                            ),
                            Fix::Purge,
                        ));
                    }
                }
            }
            IndexContent::Corrupt => {
                broken_indexes.insert(index.hash);
                out.push(Finding::problem(
                    "corrupt_index",
                    &index.rel,
                    "the user index does not decode; that user's listings scan every record",
                    Fix::Purge,
                ));
            }
            IndexContent::NotRegular => {
                broken_indexes.insert(index.hash);
                out.push(Finding::problem(
                    "not_regular_file",
                    &index.rel,
                    "a directory, symlink, FIFO or device at a user index's name",
                    Fix::Purge,
                ));
            }
            IndexContent::Unreadable(e) => {
                broken_indexes.insert(index.hash);
                out.push(Finding::problem(
                    "unreadable",
                    &index.rel,
                    format!("cannot be read: {e}"),
                    Fix::None,
                ));
            }
        }
    }
    for file in &layout.sessions {
        let Content::Record(r) = &file.content else {
            continue;
        };
        let RecordState::Live(live) = &r.state else {
            continue;
        };
        let Some(user) = live.user.as_deref() else {
            continue;
        };
        if broken_indexes.contains(&scan::user_hash(user)) {
            // Reported as the broken index; the repair rebuilds it whole.
            continue;
        }
        if !indexed
            .get(user)
            .is_some_and(|(_, keys)| keys.contains(&file.key))
        {
            out.push(Finding::problem(
                "missing_index_entry",
                &file.rel,
                "a live session missing from its user's index: listing and revoking the user's sessions miss it",
                Fix::Purge,
            ));
        }
    }
    for oddity in &layout.oddities {
        let rel = oddity.rel.clone();
        out.push(match oddity.kind {
            OddityKind::OrphanedTemp => Finding::problem(
                "orphaned_temp",
                rel,
                "a temporary file left by a crashed writer (or a write in progress)",
                Fix::Purge,
            ),
            OddityKind::UnusedLock => Finding::problem(
                "orphaned_lock",
                rel,
                "an empty file in locks/ that is none of the store's lock files",
                Fix::RemoveLock,
            ),
            OddityKind::BadLock => Finding::problem(
                "bad_lock_file",
                rel,
                "not a regular file at a lock file's name: writes of that shard fail",
                Fix::None,
            ),
            OddityKind::NotADirectory => Finding::problem(
                "not_a_directory",
                rel,
                "something other than a directory where the layout has one",
                Fix::None,
            ),
            OddityKind::Unlistable => Finding::problem(
                "unlistable",
                rel,
                "the directory cannot be listed",
                Fix::None,
            ),
            OddityKind::Misplaced => Finding::note(
                "misplaced",
                rel,
                "a store-named file in another key's fan-out directory: the store never reads it",
                Fix::None,
            ),
            OddityKind::UnknownEntry => Finding::note(
                "unknown_entry",
                rel,
                "not a name the store uses: ignored by the store",
                Fix::None,
            ),
        });
    }
    if layout.set_aside > 0 {
        out.push(Finding::note(
            "set_aside",
            "corrupt",
            format!(
                "{} entr{} moved aside by purge or repair, for an operator to inspect",
                layout.set_aside,
                if layout.set_aside == 1 { "y" } else { "ies" }
            ),
            Fix::None,
        ));
    }
    out.sort_by_key(|f| (f.severity == Severity::Note, f.code, f.path.clone()));
    out
}

fn finding_json(f: &Finding) -> serde_json::Value {
    json!({
        "severity": match f.severity { Severity::Problem => "problem", Severity::Note => "note" },
        "code": f.code,
        "path": f.path,
        "detail": f.detail,
        "repairable": f.fix != Fix::None,
    })
}

fn print_findings(findings: &[Finding]) {
    for f in findings {
        let tag = match f.severity {
            Severity::Problem => "PROBLEM",
            Severity::Note => "note",
        };
        println!("{tag:<7}  {:<20}  {}: {}", f.code, f.path, f.detail);
    }
}

/// Whether `check`'s argument is a Redis URL (or `--store`'s `redis:URL`)
/// rather than a directory: the check reads a file store's files, and a
/// Redis store has none. Its "cannot open the file store" message would
/// quote the URL, and with it any password, so it is refused first (unless
/// a directory of that name exists).
fn is_redis_url(root: &Path) -> bool {
    let text = root.to_string_lossy();
    ["redis:", "rediss:", "redis+unix:"]
        .iter()
        .any(|scheme| text.starts_with(scheme))
        && !root.is_dir()
}

/// `latchkey check`.
pub(crate) fn run(root: &Path, repair: bool, json: bool) -> Result<u8, Failure> {
    if is_redis_url(root) {
        // The URL is not quoted: it may carry a password.
        return Err(Failure::Usage(
            "`check` reads a file store's directory (check DIR); a Redis store has no files to check"
                .into(),
        ));
    }
    let before = findings(root, &scan::walk(root)?);
    if !repair {
        let problems = before
            .iter()
            .filter(|f| f.severity == Severity::Problem)
            .count();
        if json {
            let list: Vec<_> = before.iter().map(finding_json).collect();
            output::json(
                &json!({ "clean": problems == 0, "problems": problems, "findings": list }),
            );
        } else {
            print_findings(&before);
            if problems == 0 {
                println!("clean: no problems found");
            } else {
                let fixable = before.iter().filter(|f| f.fix != Fix::None).count();
                println!("{problems} problem(s); {fixable} can be fixed with --repair");
            }
        }
        return Ok(if problems == 0 { exit::OK } else { exit::NO });
    }

    // Repair. The purge runs at the epoch, so it deletes no record for
    // expiring (every record expires after 1970) and does only its repairs:
    // moves corrupt, foreign and non-regular entries to corrupt/, deletes
    // temporary files under their locks, prunes and rebuilds the index.
    let mut actions: Vec<String> = Vec::new();
    let mut skips: Vec<String> = Vec::new();
    if before.iter().any(|f| f.fix == Fix::Purge) {
        let store = open_file_store(root)?;
        let report = store
            .purge_expired_report(Timestamp::UNIX_EPOCH)
            .map_err(|e| {
                Failure::store(
                    format!("cannot repair the file store {}", root.display()),
                    e,
                )
            })?;
        actions.push(
            "ran the library's purge repairs (locks held, no record deleted for expiry)".into(),
        );
        for skip in report.skips() {
            // What purge moved aside is a fix; anything else it skipped
            // is not fixed and shows in the re-check below.
            if skip.moved_aside() {
                actions.push(format!("purge: {skip}"));
            } else {
                skips.push(skip.to_string());
            }
        }
    }
    for f in before.iter().filter(|f| f.fix == Fix::RemoveLock) {
        let path = root.join(&f.path);
        // Re-checked at the moment of removal: only an empty regular file.
        let still_unused = fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == 0);
        if still_unused {
            match fs::remove_file(&path) {
                Ok(()) => actions.push(format!("removed the unused lock file {}", f.path)),
                Err(e) => skips.push(format!("{}: cannot remove: {e}", f.path)),
            }
        }
    }
    let after = findings(root, &scan::walk(root)?);
    let after_keys: HashSet<_> = after.iter().map(Finding::key).collect();
    let fixed: Vec<&Finding> = before
        .iter()
        .filter(|f| f.severity == Severity::Problem && !after_keys.contains(&f.key()))
        .collect();
    let problems = after
        .iter()
        .filter(|f| f.severity == Severity::Problem)
        .count();
    if json {
        output::json(&json!({
            "clean": problems == 0,
            "fixed": fixed.iter().map(|f| finding_json(f)).collect::<Vec<_>>(),
            "actions": actions,
            "purge_skips": skips,
            "problems": problems,
            "findings": after.iter().map(finding_json).collect::<Vec<_>>(),
        }));
    } else {
        if fixed.is_empty() {
            println!("nothing to repair");
        }
        for f in &fixed {
            println!("fixed    {:<20}  {}", f.code, f.path);
        }
        for a in &actions {
            println!("did      {a}");
        }
        for s in &skips {
            println!("skipped  {s}");
        }
        print_findings(&after);
        if problems == 0 {
            println!("clean: no problems remain");
        } else {
            println!("{problems} problem(s) remain; they need an operator");
        }
    }
    Ok(if problems == 0 { exit::OK } else { exit::NO })
}
