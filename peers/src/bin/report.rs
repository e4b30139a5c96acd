//! BENCHMARKS.md's table, from the goals (`peers/goals.json`) and the
//! figures of the last runs (the results file, see
//! `latchkey_peers::results`): one row per case, latchkey beside its peer
//! and its floor, the ratios, the goal, and whether it is met.
//!
//! ```text
//! cargo run -p latchkey-peers --bin report                          # print the table
//! cargo run -p latchkey-peers --bin report -- --write BENCHMARKS.md # replace its table
//! ```
//!
//! `--write FILE` replaces what lies between the lines
//! `<!-- report:begin -->` and `<!-- report:end -->` of FILE. Rows whose
//! case has no figure yet are listed under the table with the command
//! that measures them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use latchkey_peers::results::{self, Figure};
use serde::Deserialize;

const BEGIN: &str = "<!-- report:begin -->";
const END: &str = "<!-- report:end -->";

/// The goals file.
#[derive(Debug, Deserialize)]
struct Goals {
    rows: Vec<Row>,
}

/// One row of the table.
#[derive(Debug, Deserialize)]
struct Row {
    case: String,
    label: String,
    unit: String,
    #[serde(default)]
    peer: Option<String>,
    #[serde(default)]
    floor: Option<String>,
    #[serde(default)]
    goals: Vec<Goal>,
    command: String,
}

/// latchkey's figure ÷ the peer's, the floor's or 1 (`vs: "value"`), at
/// most or at least a limit.
#[derive(Debug, Deserialize)]
struct Goal {
    vs: String,
    #[serde(default)]
    at_most: Option<f64>,
    #[serde(default)]
    at_least: Option<f64>,
}

/// A value in its unit, as a person reads it.
fn show(unit: &str, v: f64) -> String {
    match unit {
        "ns" => latchkey_peers::harness::show_ns(v),
        "ops/s" if v >= 1e6 => format!("{:.2} M/s", v / 1e6),
        "ops/s" => format!("{:.1} k/s", v / 1e3),
        "x" => format!("{v:.2}×"),
        "bytes" => format!("{v:.0} B"),
        "%" => format!("{v:.2}%"),
        _ => format!("{v}"),
    }
}

/// The ratio cell, the goal cell and the verdict of `row` given `f`.
fn judge(row: &Row, f: &Figure) -> (String, String, &'static str) {
    let Some(ours) = f.latchkey else {
        return ("–".into(), "–".into(), "–");
    };
    let mut ratios = Vec::new();
    let mut goals = Vec::new();
    let mut met = None;
    // The ratios shown: against the peer and the floor (when measured),
    // and for a ratio row its own value.
    for (name, base) in [("peer", f.peer), ("floor", f.floor)] {
        if let Some(b) = base
            && row.unit != "x"
            && b > 0.0
        {
            ratios.push(format!("{:.2}× {name}", ours / b));
        }
    }
    for g in &row.goals {
        let base = match g.vs.as_str() {
            "peer" => f.peer,
            "floor" => f.floor,
            _ => Some(1.0),
        };
        let against = if g.vs == "value" {
            String::new()
        } else {
            format!(" {}", g.vs)
        };
        let limit = |v: f64| match row.unit.as_str() {
            "bytes" | "count" | "%" if g.vs == "value" => show(&row.unit, v),
            _ => format!("{v}×"),
        };
        let (text, ok) = match (g.at_most, g.at_least, base) {
            (Some(l), _, Some(b)) => (format!("≤ {}{against}", limit(l)), ours / b <= l),
            (_, Some(l), Some(b)) => (format!("≥ {}{against}", limit(l)), ours / b >= l),
            (Some(l), _, None) => (format!("≤ {}{against}", limit(l)), false),
            (_, Some(l), None) => (format!("≥ {}{against}", limit(l)), false),
            _ => continue,
        };
        goals.push(text);
        met = Some(met.unwrap_or(true) && ok && base.is_some());
    }
    let ratio = if ratios.is_empty() {
        "–".into()
    } else {
        ratios.join(", ")
    };
    let goal = if goals.is_empty() {
        "–".into()
    } else {
        goals.join(", ")
    };
    let verdict = match met {
        None => "–",
        Some(true) => "yes",
        Some(false) => "**no**",
    };
    (ratio, goal, verdict)
}

/// The table and its header lines, as Markdown.
fn render(goals: &Goals, figures: &BTreeMap<String, Figure>) -> String {
    let mut out = String::new();
    let mut at = BTreeSet::new();
    let mut commits = BTreeSet::new();
    let mut machines = BTreeSet::new();
    let mut missing = Vec::new();
    let mut rows = String::new();
    for row in &goals.rows {
        let Some(f) = figures.get(&row.case) else {
            missing.push(format!("{} (`{}`)", row.label, row.command));
            continue;
        };
        at.insert(f.at.clone());
        commits.insert(f.commit.clone());
        machines.insert(f.machine.clone());
        let cell = |v: Option<f64>, name: &Option<String>| match (v, name) {
            (Some(v), Some(n)) => format!("{} ({n})", show(&row.unit, v)),
            (Some(v), None) => show(&row.unit, v),
            (None, _) => "–".into(),
        };
        let (ratio, goal, met) = judge(row, f);
        rows += &format!(
            "| {} | {} | {} | {} | {ratio} | {goal} | {met} |\n",
            row.label,
            f.latchkey.map_or("–".into(), |v| show(&row.unit, v)),
            cell(f.peer, &row.peer),
            cell(f.floor, &row.floor),
        );
    }
    let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
    let when = match (at.first(), at.last()) {
        (Some(a), Some(b)) if a != b => format!("{a} to {b}"),
        (Some(a), _) => a.clone(),
        _ => "never".into(),
    };
    out += &format!(
        "Measured {when}, commit {}, on {}.\n\n",
        join(&commits),
        join(&machines)
    );
    out += "| case | latchkey | peer | floor | ratio | goal | met |\n";
    out += "|---|---|---|---|---|---|---|\n";
    out += &rows;
    if !missing.is_empty() {
        out += &format!("\nNot measured in this run: {}.\n", missing.join("; "));
    }
    out
}

/// `doc` with the text between its markers replaced by `table`.
fn splice(doc: &str, table: &str) -> Result<String, String> {
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        return Err(format!("the file has no {BEGIN} … {END} lines"));
    };
    if e < b {
        return Err(format!("{END} comes before {BEGIN}"));
    }
    Ok(format!("{}{BEGIN}\n{table}{}", &doc[..b], &doc[e..]))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut write = None;
    let mut goals_path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/goals.json"));
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--write", Some(p)) => write = Some(PathBuf::from(p)),
            ("--goals", Some(p)) => goals_path = PathBuf::from(p),
            _ => {
                eprintln!("usage: report [--write FILE] [--goals FILE]");
                std::process::exit(2);
            }
        }
    }
    let goals: Goals = match std::fs::read_to_string(&goals_path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{}: {e}", goals_path.display());
            std::process::exit(1);
        }
    };
    let figures = match results::load() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let table = render(&goals, &figures);
    let Some(path) = write else {
        print!("{table}");
        return;
    };
    let done = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|doc| splice(&doc, &table))
        .and_then(|doc| std::fs::write(&path, doc).map_err(|e| e.to_string()));
    if let Err(e) = done {
        eprintln!("{}: {e}", path.display());
        std::process::exit(1);
    }
    eprintln!("wrote the table into {}", path.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goals() -> Goals {
        let text = include_str!("../../goals.json");
        match serde_json::from_str(text) {
            Ok(g) => g,
            Err(e) => panic!("goals.json: {e}"),
        }
    }

    #[test]
    fn the_goals_file_parses_and_names_each_case_once() {
        let g = goals();
        let cases: BTreeSet<_> = g.rows.iter().map(|r| &r.case).collect();
        assert_eq!(cases.len(), g.rows.len());
        for r in &g.rows {
            assert!(
                ["ns", "ops/s", "x", "bytes", "count", "%"].contains(&r.unit.as_str()),
                "{}",
                r.case
            );
            for goal in &r.goals {
                assert!(
                    ["peer", "floor", "value"].contains(&goal.vs.as_str()),
                    "{}",
                    r.case
                );
                assert!(
                    goal.at_most.is_some() != goal.at_least.is_some(),
                    "{}",
                    r.case
                );
            }
        }
    }

    #[test]
    fn a_row_is_judged_against_each_goal() {
        let g = goals();
        let row = |c: &str| match g.rows.iter().find(|r| r.case == c) {
            Some(r) => r,
            None => panic!("no row {c}"),
        };
        let f = |l, p, fl| Figure {
            latchkey: Some(l),
            peer: p,
            floor: fl,
            ..Figure::default()
        };
        let load = row("load_100k");
        assert_eq!(
            judge(load, &f(300.0, Some(800.0), Some(220.0))),
            (
                "0.38× peer, 1.36× floor".into(),
                "≤ 0.5× peer, ≤ 1.5× floor".into(),
                "yes"
            )
        );
        assert_eq!(judge(load, &f(400.0, Some(800.0), Some(220.0))).2, "**no**");
        // A goal whose base was not measured is not met.
        assert_eq!(judge(load, &f(300.0, Some(800.0), None)).2, "**no**");
        assert_eq!(judge(row("load_1m_2t"), &f(2.1, None, Some(1.7))).2, "yes");
        assert_eq!(judge(row("redis_16"), &f(9e4, Some(1e5), None)).2, "**no**");
        assert_eq!(
            judge(row("memory_1m"), &f(250.0, Some(489.0), None)).1,
            "≤ 300 B"
        );
        // A row without goals has no verdict.
        assert_eq!(
            judge(row("e2e_axum_rps_redis_sync"), &f(1.0, Some(1.0), None)).2,
            "–"
        );
        // A share against a value: 0.5% meets "≤ 1%", 5% does not.
        let share = row("e2e_axum_409_redis");
        assert_eq!(judge(share, &f(0.5, Some(0.0), None)).1, "≤ 1.00%");
        assert_eq!(judge(share, &f(0.5, Some(0.0), None)).2, "yes");
        assert_eq!(judge(share, &f(5.0, Some(0.0), None)).2, "**no**");
        assert_eq!(
            judge(row("e2e_axum_lost_redis"), &f(0.0, Some(9.0), None)).2,
            "yes"
        );
    }

    #[test]
    fn the_table_lists_measured_rows_and_names_the_rest() {
        let mut figures = BTreeMap::new();
        figures.insert(
            "id".to_string(),
            Figure {
                latchkey: Some(46.0),
                floor: Some(61.0),
                at: "2026-12-07 04:00 UTC".into(),
                commit: "abc1234".into(),
                machine: "2 CPUs, X".into(),
                ..Figure::default()
            },
        );
        let t = render(&goals(), &figures);
        assert!(t.starts_with("Measured 2026-12-07 04:00 UTC, commit abc1234, on 2 CPUs, X."));
        assert!(t.contains(
            "| ID generate + encode | 46.0 ns | – | 61.0 ns (ThreadRng + base64url) | 0.75× floor | ≤ 1.5× floor | yes |"
        ));
        assert!(t.contains("Not measured in this run: memory load, 100k live (`timing -- load`)"));
    }

    #[test]
    fn the_table_replaces_only_what_lies_between_the_markers() {
        let doc = format!("a\n{BEGIN}\nold\n{END}\nb\n");
        assert_eq!(
            splice(&doc, "new\n"),
            Ok(format!("a\n{BEGIN}\nnew\n{END}\nb\n"))
        );
        assert!(splice("no markers", "x").is_err());
    }
}
