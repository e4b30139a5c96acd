//! Turns the last `cargo bench -p latchkey-peers --bench compare` run into
//! the Markdown tables of BENCHMARKS.md: each latchkey figure with its ratio
//! to its peer and to its floor, and the issue's goal beside it.
//!
//! ```text
//! cargo run -p latchkey-peers --bin report                # the last run
//! cargo run -p latchkey-peers --bin report -- r1 r2 r3    # best of saved baselines
//! cargo run -p latchkey-peers --bin report -- --svg docs/benchmarks.svg r1 r2 r3
//! ```
//!
//! It reads criterion's `estimates.json` (the median, in nanoseconds per
//! iteration) for each case from `target/criterion` (or `$CRITERION_DIR`).
//! Given baseline names (runs made with `-- --save-baseline NAME`), it takes
//! for each case the lowest median across them: on a shared machine other
//! processes only ever add time, so the best run is the least disturbed one.
//! The `*_2t` cases do one operation on each of two threads per iteration,
//! so their rate is two operations per iteration.
//!
//! With `--svg PATH` it also draws the same figures as bar charts (each
//! case's bars on its own scale, so a case's bars compare with each other,
//! not with another case's) into one SVG file, for BENCHMARKS.md.

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
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let svg_path = match args.iter().position(|a| a == "--svg") {
        Some(i) if i + 1 < args.len() => {
            let path = args.remove(i + 1);
            args.remove(i);
            Some(PathBuf::from(path))
        }
        Some(_) => {
            eprintln!("--svg needs a path");
            std::process::exit(2);
        }
        None => None,
    };
    let mut baselines = args;
    if baselines.is_empty() {
        baselines.push("new".into());
    }
    let get = |id: &str| median_ns(&dir, &baselines, id);
    let mut chart = Chart::default();

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
            "save, 100k live, 1 thread",
            "save_100k/latchkey_1t",
            "save_100k/tower_sessions_1t",
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
        let mut bars = vec![("latchkey".to_string(), o, time(o))];
        if let Some(x) = p {
            bars.push((
                peer_name(peer),
                x,
                format!("{} (latchkey ÷ this: {:.2}×)", time(x), o / x),
            ));
        }
        if let Some(x) = f {
            bars.push((
                "floor".into(),
                x,
                format!("{} (latchkey ÷ this: {:.2}×)", time(x), o / x),
            ));
        }
        let mut marks = Vec::new();
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
                marks.push((limit * b, format!("goal {part}")));
            }
        }
        chart.group(&format!("{name}: time per operation"), &bars, &marks);
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
    for (op, n) in [("load", "100k"), ("load", "1m"), ("save", "100k")] {
        let size = if n == "1m" { "1M" } else { n };
        // Only load has a two-thread goal.
        let has_goal = op == "load";
        let mut bars = Vec::new();
        for (who, goal) in [
            ("latchkey", if has_goal { "≥ 1.6×" } else { "" }),
            ("tower_sessions", ""),
            ("floor", ""),
        ] {
            let one = format!("{op}_{n}/{who}_1t");
            let two = format!("{op}_{n}/{who}_2t");
            let (Some(a), Some(b)) = (get(&one), get(&two)) else {
                continue;
            };
            let (ra, rb) = (rate(&one, a), rate(&two, b));
            let scale = rb / ra;
            bars.push((who.replace('_', "-"), scale, format!("{scale:.2}×")));
            let v = if goal.is_empty() {
                String::new()
            } else {
                format!("{goal}: {}", verdict(scale, 1.6, false))
            };
            println!(
                "| {op} {size}, {} | {} | {} | {:.2}× | {v} |",
                who.replace('_', "-"),
                ops(ra),
                ops(rb),
                scale
            );
        }
        let (goal, marks) = if has_goal {
            (
                " (goal ≥ 1.6× for latchkey)",
                vec![(1.6, "goal ≥ 1.6×".to_string())],
            )
        } else {
            ("", Vec::new())
        };
        chart.group(
            &format!("{op}, {size} live: two threads' rate ÷ one thread's{goal}"),
            &bars,
            &marks,
        );
    }

    if let Some(path) = svg_path {
        let title = format!(
            "latchkey beside its peers and floors (criterion medians, best of: {})",
            baselines.join(", ")
        );
        if let Err(e) = std::fs::write(&path, chart.render(&title)) {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        eprintln!("wrote {}", path.display());
    }
}

/// A peer's name for a chart, from its case id.
fn peer_name(id: &str) -> String {
    let case = id.rsplit('/').next().unwrap_or(id);
    match case {
        c if c.starts_with("tower_sessions") => "tower-sessions".into(),
        "jwt_hs256_decode" => "jsonwebtoken decode".into(),
        "jwt_hs256_encode" => "jsonwebtoken encode".into(),
        "cookie_signed_add_get" => "cookie SignedJar".into(),
        other => other.replace('_', " "),
    }
}

/// One bar: its label, its value (sets the length) and the value as text.
type Bar = (String, f64, String);

/// Horizontal bar charts, one group per case, stacked in one SVG.
#[derive(Default)]
struct Chart {
    groups: Vec<Group>,
}

/// One case's bars, with its goals drawn as lines (value, label).
struct Group {
    title: String,
    bars: Vec<Bar>,
    marks: Vec<(f64, String)>,
}

impl Chart {
    const WIDTH: f64 = 760.0;
    const LABEL: f64 = 170.0;
    const BAR: f64 = 18.0;
    const GAP: f64 = 6.0;

    fn group(&mut self, title: &str, bars: &[Bar], marks: &[(f64, String)]) {
        if !bars.is_empty() {
            self.groups.push(Group {
                title: title.to_string(),
                bars: bars.to_vec(),
                marks: marks.to_vec(),
            });
        }
    }

    fn render(&self, title: &str) -> String {
        let esc = |t: &str| {
            t.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let mut body = String::new();
        let mut y = 40.0;
        for Group {
            title: heading,
            bars,
            marks,
        } in &self.groups
        {
            body += &format!(
                "<text x=\"10\" y=\"{y:.0}\" font-weight=\"bold\">{}</text>\n",
                esc(heading)
            );
            y += 8.0;
            let max = bars
                .iter()
                .map(|b| b.1)
                .chain(marks.iter().map(|m| m.0))
                .fold(0.0_f64, f64::max);
            let top = y;
            // Room on the right for the value's text.
            let span = Self::WIDTH - Self::LABEL - 230.0;
            for (label, value, text) in bars {
                let w = if max > 0.0 { value / max * span } else { 0.0 };
                let fill = match label.as_str() {
                    "latchkey" => "#2b6cb0",
                    "floor" => "#68a063",
                    _ => "#a0a0a0",
                };
                body += &format!(
                    "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text>\
                     <rect x=\"{:.0}\" y=\"{y:.0}\" width=\"{w:.1}\" height=\"{:.0}\" fill=\"{fill}\"/>\
                     <text x=\"{:.1}\" y=\"{:.0}\">{}</text>\n",
                    Self::LABEL - 8.0,
                    y + Self::BAR - 5.0,
                    esc(label),
                    Self::LABEL,
                    Self::BAR,
                    Self::LABEL + w + 6.0,
                    y + Self::BAR - 5.0,
                    esc(text),
                );
                y += Self::BAR + Self::GAP;
            }
            // Goal lines: dashed, across the group's bars, labelled below.
            for (i, (value, label)) in marks.iter().enumerate() {
                let x = Self::LABEL + if max > 0.0 { value / max * span } else { 0.0 };
                body += &format!(
                    "<line x1=\"{x:.1}\" y1=\"{:.0}\" x2=\"{x:.1}\" y2=\"{y:.0}\" \
                     stroke=\"#c53030\" stroke-dasharray=\"4 3\"/>\
                     <text x=\"{x:.1}\" y=\"{:.0}\" font-size=\"11\" fill=\"#c53030\">{}</text>\n",
                    top - 2.0,
                    y + 10.0 + 12.0 * i as f64,
                    esc(label),
                );
            }
            y += 22.0 + 12.0 * marks.len() as f64;
        }
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{y:.0}\" \
             font-family=\"sans-serif\" font-size=\"13\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"10\" y=\"20\" font-size=\"15\">{}</text>\n{body}</svg>\n",
            esc(title),
            w = Self::WIDTH,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_share_their_group_scale_and_text_is_escaped() {
        let mut chart = Chart::default();
        let bar = |label: &str, v: f64| (label.to_string(), v, format!("{v}"));
        chart.group(
            "a <b> & c",
            &[bar("latchkey", 100.0), bar("peer", 200.0)],
            &[],
        );
        chart.group(
            "goal",
            &[bar("latchkey", 10.0)],
            &[(40.0, "goal ≤ 4×".into())],
        );
        let svg = chart.render("t");
        let span = Chart::WIDTH - Chart::LABEL - 230.0;
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        assert!(!svg.contains("<b>"));
        // The longest bar of a group spans the whole width, the others in proportion.
        assert!(svg.contains(&format!("width=\"{:.1}\"", span)));
        assert!(svg.contains(&format!("width=\"{:.1}\"", span / 2.0)));
        // A goal beyond every bar sets the scale: the bar is a quarter of it.
        assert!(svg.contains(&format!("width=\"{:.1}\"", span / 4.0)));
        assert!(svg.contains("goal ≤ 4×"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn peers_are_named_for_readers() {
        assert_eq!(peer_name("load_1m/tower_sessions_1t"), "tower-sessions");
        assert_eq!(
            peer_name("stateless/jwt_hs256_decode"),
            "jsonwebtoken decode"
        );
        assert_eq!(peer_name("x/some_case"), "some case");
    }
}
