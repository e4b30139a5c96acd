//! A short, readable device label from a `User-Agent` header: "Chrome on
//! Linux", not 150 characters of `Mozilla/5.0 (X11; …` cut mid-word.
//!
//! The label is what a person needs to recognise a session in "your
//! sessions"; the fingerprint and the times next to it tell two sessions of
//! the same browser apart. It is stored with the session, so it must stay
//! well inside the policy's label limit (256 bytes by default).

/// The longest fallback label, in characters, before the ellipsis.
const MAX_CHARS: usize = 60;

/// Browsers, most specific first: Edge and Opera say `Chrome/` too, and
/// Chrome says `Safari/`.
const BROWSERS: &[(&str, &str)] = &[
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("OPR/", "Opera"),
    ("Opera/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Vivaldi/", "Vivaldi"),
    ("FxiOS/", "Firefox"),
    ("Firefox/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("HeadlessChrome/", "Headless Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
    ("Wget/", "Wget"),
];

/// Operating systems, most specific first: Android says `Linux`, iOS says
/// `like Mac OS X`, ChromeOS says `X11`.
const SYSTEMS: &[(&str, &str)] = &[
    ("Windows", "Windows"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Macintosh", "macOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
    ("FreeBSD", "FreeBSD"),
];

/// The label to store for a session started with this `User-Agent`:
/// browser and system when they can be told ("Firefox on Windows"),
/// otherwise the header itself, trimmed (see [`shorten`]).
pub(crate) fn label(user_agent: &str) -> String {
    let find = |table: &[(&str, &'static str)]| {
        table
            .iter()
            .find(|(token, _)| user_agent.contains(token))
            .map(|&(_, name)| name)
    };
    match (find(BROWSERS), find(SYSTEMS)) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(name), None) | (None, Some(name)) => name.to_owned(),
        (None, None) => shorten(user_agent),
    }
}

/// A stored label as shown: labels of this demo are already short; a raw
/// `User-Agent` kept by an older version is labelled now.
pub(crate) fn display(stored: &str) -> String {
    if stored.starts_with("Mozilla/") {
        label(stored)
    } else {
        shorten(stored)
    }
}

/// `text` without control characters and at most [`MAX_CHARS`] characters
/// long, cut at a word boundary with an ellipsis when it was longer.
pub(crate) fn shorten(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    if clean.chars().count() <= MAX_CHARS {
        return clean.to_owned();
    }
    let cut: String = clean.chars().take(MAX_CHARS).collect();
    // Back to the last space, unless that would leave almost nothing (one
    // long token): then cut inside it.
    let cut = match cut.rfind(' ') {
        Some(at) if at >= MAX_CHARS / 2 => &cut[..at],
        _ => cut.as_str(),
    };
    format!("{}…", cut.trim_end_matches([' ', ';', ',', '(']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_browsers_get_browser_and_system() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/126.0.0.0 Safari/537.36",
                "Chrome on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
                "Firefox on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 \
                 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
                 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/126.0.0.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 HeadlessChrome/156.0.0.0 Safari/537.36",
                "Headless Chrome on Linux",
            ),
            ("curl/8.5.0", "curl"),
        ];
        for (ua, want) in cases {
            assert_eq!(label(ua), want, "{ua}");
        }
    }

    #[test]
    fn an_unknown_agent_is_cut_at_a_word_with_an_ellipsis() {
        let ua = "SomeCrawler (compatible; an unusually verbose robot that explains itself \
                  at length in its user agent string)";
        let l = label(ua);
        assert!(l.ends_with('…'), "{l}");
        assert!(l.chars().count() <= MAX_CHARS + 1, "{l}");
        let kept = l.trim_end_matches('…');
        assert!(ua.starts_with(kept), "a prefix of the header: {l}");
        assert_eq!(
            ua[kept.len()..].chars().next(),
            Some(' '),
            "cut before a space, not mid-word: {l}"
        );
    }

    #[test]
    fn a_short_unknown_agent_is_kept_whole_and_control_characters_dropped() {
        assert_eq!(label("my-script/1.0"), "my-script/1.0");
        assert_eq!(shorten("a\r\nb\u{7}"), "a  b");
    }

    #[test]
    fn one_long_token_is_cut_inside_it() {
        let l = shorten(&"x".repeat(500));
        assert_eq!(l, format!("{}…", "x".repeat(MAX_CHARS)));
    }

    #[test]
    fn a_label_stays_inside_the_policys_limit_whatever_the_characters() {
        // 60 four-byte characters and an ellipsis: far below 256 bytes.
        let l = label(&"😀".repeat(1000));
        assert!(l.len() <= 4 * MAX_CHARS + 3, "{} bytes", l.len());
    }

    #[test]
    fn stored_labels_are_shown_as_they_are_and_old_raw_agents_are_labelled() {
        assert_eq!(display("Chrome on Linux"), "Chrome on Linux");
        assert_eq!(
            display(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126"
            ),
            "Chrome on Linux"
        );
    }
}
