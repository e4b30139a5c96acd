//! Turns the last `cargo bench -p latchkey-peers --bench compare` run into
//! the Markdown tables of BENCHMARKS.md: each latchkey figure with its ratio
//! to its peer and to its floor, and the issue's goal beside it.
//!
//! ```text
//! cargo run -p latchkey-peers --bin report                # the last run
//! cargo run -p latchkey-peers --bin report -- r1 r2 r3    # best of saved baselines
//! ```
//!
//! It reads criterion's `estimates.json` (the median, in nanoseconds per
//! iteration) for each case from `target/criterion` (or `$CRITERION_DIR`).
//! Given baseline names (runs made with `-- --save-baseline NAME`), it takes
//! for each case the lowest median across them: on a shared machine other
//! processes only ever add time, so the best run is the least disturbed one.
//! The `*_2t` cases do one operation on each of two threads per iteration,
//! so their rate is two operations per iteration.

use std::path::{Path, PathBuf};

/// The lowest median time per iteration of `group/case` across
/// `baselines`, in nanoseconds.
fn median_ns(dir: &Path, baselines: &[String], id: &str) -> Option<f64> {
    baselines
        .iter()
        .filter_map(|b| {
            let path = dir.join(id).join(b).join("estimates.json");
            let text = std::fs::read_to_string(path).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            v["median"]["point_estimate"].as_f64()
        })
        .min_by(f64::total_cmp)
}

/// Operations per second of a case (two per iteration for `_2t`).
fn rate(id: &str, ns: f64) -> f64 {
    let ops = if id.ends_with("_2t") { 2.0 } else { 1.0 };
    ops * 1e9 / ns
}

fn time(ns: f64) -> String {
    if ns >= 1000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

fn ops(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else {
        format!("{:.0} k/s", r / 1e3)
    }
}

fn verdict(ratio: f64, limit: f64, at_most: bool) -> &'static str {
    let ok = if at_most {
        ratio <= limit
    } else {
        ratio >= limit
    };
    if ok { "met" } else { "**not met**" }
}

fn main() {
    let dir: PathBuf = std::env::var_os("CRITERION_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/criterion"));
    let mut baselines: Vec<String> = std::env::args().skip(1).collect();
    if baselines.is_empty() {
        baselines.push("new".into());
    }
    let get = |id: &str| median_ns(&dir, &baselines, id);

    println!("### Time per operation (median), with ratios\n");
    println!("| case | latchkey | peer | floor | ÷ peer | ÷ floor | goal |");
    println!("|---|---|---|---|---|---|---|");
    let rows: &[(&str, &str, &str, &str, &str)] = &[
        (
            "load, 100k live, 1 thread",
            "load_100k/latchkey_1t",
            "load_100k/tower_sessions_1t",
            "load_100k/floor_1t",
            "≤ 0.5× peer, ≤ 1.5× floor",
        ),
        (
            "load, 1M live, 1 thread",
            "load_1m/latchkey_1t",
            "load_1m/tower_sessions_1t",
            "load_1m/floor_1t",
            "≤ 0.5× peer, ≤ 1.5× floor",
        ),
        (
            "save, 100k live",
            "save_100k/latchkey",
            "save_100k/tower_sessions",
            "",
            "",
        ),
        (
            "ticket verify (vs JWT decode)",
            "stateless/latchkey_ticket_verify",
            "stateless/jwt_hs256_decode",
            "stateless/floor_b64url_hmac",
            "≤ 0.35× peer, ≤ 1.3× floor",
        ),
        (
            "ticket issue (vs JWT encode)",
            "stateless/latchkey_ticket_issue",
            "stateless/jwt_hs256_encode",
            "",
            "≤ 0.6× peer",
        ),
        (
            "ticket verify (vs cookie SignedJar add+get)",
            "stateless/latchkey_ticket_verify",
            "stateless/cookie_signed_add_get",
            "",
            "",
        ),
        (
            "ID generate + encode",
            "id/latchkey_generate_encode",
            "",
            "id/floor_threadrng_b64url",
            "≤ 1.5× floor",
        ),
    ];
    for (name, ours, peer, floor, goal) in rows {
        let Some(o) = get(ours) else {
            println!("| {name} | (not run) | | | | | {goal} |");
            continue;
        };
        let p = if peer.is_empty() { None } else { get(peer) };
        let f = if floor.is_empty() { None } else { get(floor) };
        let cell = |x: Option<f64>| x.map(time).unwrap_or_else(|| "–".into());
        let ratio = |x: Option<f64>| {
            x.map(|x| format!("{:.2}×", o / x))
                .unwrap_or_else(|| "–".into())
        };
        let mut verdicts = Vec::new();
        for part in goal.split(", ").filter(|g| !g.is_empty()) {
            let (limit, against) = part
                .trim_start_matches("≤ ")
                .split_once("× ")
                .unwrap_or(("0", ""));
            let limit: f64 = limit.parse().unwrap_or(0.0);
            let base = if against == "peer" { p } else { f };
            if let Some(b) = base {
                verdicts.push(format!("{part}: {}", verdict(o / b, limit, true)));
            }
        }
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            time(o),
            cell(p),
            cell(f),
            ratio(p),
            ratio(f),
            verdicts.join("; ")
        );
    }

    println!("\n### Two threads sharing one store (aggregate operations per second)\n");
    println!("| case | 1 thread | 2 threads | 2 ÷ 1 | goal |");
    println!("|---|---|---|---|---|");
    for n in ["100k", "1m"] {
        for (who, goal) in [
            ("latchkey", "≥ 1.6×"),
            ("tower_sessions", ""),
            ("floor", ""),
        ] {
            let one = format!("load_{n}/{who}_1t");
            let two = format!("load_{n}/{who}_2t");
            let (Some(a), Some(b)) = (get(&one), get(&two)) else {
                continue;
            };
            let (ra, rb) = (rate(&one, a), rate(&two, b));
            let scale = rb / ra;
            let v = if goal.is_empty() {
                String::new()
            } else {
                format!("{goal}: {}", verdict(scale, 1.6, false))
            };
            println!(
                "| load {n}, {} | {} | {} | {:.2}× | {v} |",
                who.replace('_', "-"),
                ops(ra),
                ops(rb),
                scale
            );
        }
    }
}
