//! The figures of the last runs, kept in one JSON file that the `report`
//! binary turns into BENCHMARKS.md's table.
//!
//! Each figure is a row of that table by its case name (the `case` of a
//! row in `peers/goals.json`): latchkey's value, its peer's and its
//! floor's, in the row's unit, with when, at which commit and how it was
//! measured. A run replaces the figures of the cases it measured and keeps
//! the others. Any binary may record figures: `timing`, `memory`, and the
//! end-to-end harness for its rows.
//!
//! The file is `$LATCHKEY_RESULTS` if set, else `latchkey-results.json` in
//! the target directory (`$CARGO_TARGET_DIR`, or the workspace's
//! `target/`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One measured row: latchkey's value beside its peer's and its floor's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// latchkey's value, in the row's unit.
    pub latchkey: Option<f64>,
    /// The peer's value, measured in the same run.
    #[serde(default)]
    pub peer: Option<f64>,
    /// The floor's value, measured in the same run.
    #[serde(default)]
    pub floor: Option<f64>,
    /// How the values were taken (for example "fastest of 15 rounds").
    #[serde(default)]
    pub how: String,
    /// When (UTC, to the minute); filled in by [`record`].
    #[serde(default)]
    pub at: String,
    /// The commit measured (`git rev-parse --short HEAD`, `+` if the tree
    /// had changes); filled in by [`record`].
    #[serde(default)]
    pub commit: String,
    /// The machine (see [`machine`]); filled in by [`record`] unless
    /// given (a harness that pins itself to one CPU takes it before).
    #[serde(default)]
    pub machine: String,
}

/// The results file (see the module docs).
pub fn path() -> PathBuf {
    if let Some(p) = std::env::var_os("LATCHKEY_RESULTS") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    target.join("latchkey-results.json")
}

/// Every figure in the results file, by case; none if there is no file.
///
/// # Errors
/// A file that exists but cannot be read or parsed.
pub fn load() -> Result<BTreeMap<String, Figure>, String> {
    let p = path();
    match std::fs::read_to_string(&p) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

/// Records `figure` as case `case`'s, stamped with the time and commit,
/// replacing an earlier one and keeping every other case's.
///
/// # Panics
/// If the results file cannot be read or written: a timer that cannot keep
/// its figures should say so loudly.
pub fn record(case: &str, mut figure: Figure) {
    let mut all = match load() {
        Ok(all) => all,
        Err(e) => panic!("cannot read the results: {e}"),
    };
    figure.at = now_utc();
    figure.commit = commit();
    if figure.machine.is_empty() {
        figure.machine = machine();
    }
    all.insert(case.to_owned(), figure);
    let p = path();
    if let Some(dir) = p.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let text = match serde_json::to_string_pretty(&all) {
        Ok(t) => t,
        Err(e) => panic!("cannot encode the results: {e}"),
    };
    if let Err(e) = std::fs::write(&p, text + "\n") {
        panic!("cannot write {}: {e}", p.display());
    }
}

/// The output of `program args`, trimmed; empty if it cannot run.
fn output_of(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The time, UTC, to the minute (`date -u`).
pub fn now_utc() -> String {
    output_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
}

/// The commit checked out, short, with `+` if the tree has changes.
pub fn commit() -> String {
    let head = output_of("git", &["rev-parse", "--short", "HEAD"]);
    if head.is_empty() {
        return "unknown".into();
    }
    let dirty = !output_of("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    if dirty { head + "+" } else { head }
}

/// The machine: CPU model (from `/proc/cpuinfo`) and how many CPUs this
/// process may use.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpus} CPUs, {model}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_reads_back_with_absent_fields_empty() {
        let f: Figure = match serde_json::from_str(r#"{"latchkey": 1.5}"#) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            f,
            Figure {
                latchkey: Some(1.5),
                ..Figure::default()
            }
        );
    }

    #[test]
    fn the_machine_names_its_cpus() {
        assert!(machine().contains("CPUs"));
    }
}
