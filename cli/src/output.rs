//! Human output: aligned tables, and text made safe for a terminal.

use latchkey::Timestamp;

/// Text from applications or clients (user names, device labels, session
/// data) with control characters escaped, so a crafted device label cannot
/// drive the operator's terminal (ANSI escapes, carriage returns).
pub(crate) fn safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// An instant as RFC 3339 UTC, as `Timestamp` displays it.
pub(crate) fn time(t: Timestamp) -> String {
    t.to_string()
}

/// An optional instant, or `-`.
pub(crate) fn opt_time(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".to_owned(), time)
}

/// Prints `rows` under `headers`, each column as wide as its widest cell.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(cell);
            if i + 1 < widths.len() {
                s.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
            }
        }
        println!("{}", s.trim_end());
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

/// Prints `label: value` lines with the values aligned.
pub(crate) fn fields(pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in pairs {
        println!("{k:<width$}  {v}", k = format!("{k}:"), width = width + 1);
    }
}

/// Prints a JSON value on one line.
pub(crate) fn json(value: &serde_json::Value) {
    println!("{value}");
}
