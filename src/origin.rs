//! [`check_origin`]: is a state-changing request from our own pages?

/// The request headers [`check_origin`] reads, each as received (`None`
/// when absent). Header values that are not UTF-8 can be passed as `Some`
/// of anything that will not match, e.g. `Some("")`.
///
/// # Example
/// ```
/// use latchkey::FetchHeaders;
/// let headers = FetchHeaders {
///     method: "POST",
///     sec_fetch_site: Some("same-origin"),
///     ..FetchHeaders::default()
/// };
/// assert!(latchkey::check_origin(&headers, &[]).is_ok());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchHeaders<'a> {
    /// The request method, e.g. `"POST"`.
    pub method: &'a str,
    /// `Sec-Fetch-Site`.
    pub sec_fetch_site: Option<&'a str>,
    /// `Origin`.
    pub origin: Option<&'a str>,
    /// `Host` (HTTP/1.1) or `:authority` (HTTP/2).
    pub host: Option<&'a str>,
}

/// A state-changing request that did not come from our own pages:
/// answer 403 and leave the session alone.
///
/// # Example
/// ```
/// use latchkey::{check_origin, CrossSiteRequest, FetchHeaders};
/// let from_elsewhere = FetchHeaders {
///     method: "POST",
///     sec_fetch_site: Some("cross-site"),
///     ..FetchHeaders::default()
/// };
/// let refused = check_origin(&from_elsewhere, &[]).unwrap_err();
/// assert_eq!(refused, CrossSiteRequest::FetchSite);
/// assert_eq!(refused.to_string(), "a cross-origin request (Sec-Fetch-Site) was refused");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CrossSiteRequest {
    /// `Sec-Fetch-Site` named another origin (`same-site`, `cross-site`,
    /// or a value this version does not know).
    #[error("a cross-origin request (Sec-Fetch-Site) was refused")]
    FetchSite,
    /// `Origin` was neither the request's own host nor an allowed origin.
    #[error("a request from another origin was refused")]
    Origin,
    /// `Origin: null` without `Sec-Fetch-Site` to vouch for it.
    #[error("a request from an opaque origin (Origin: null) was refused")]
    NullOrigin,
}

/// Whether a method changes state (anything but GET, HEAD, OPTIONS, TRACE).
fn is_unsafe(method: &str) -> bool {
    !["GET", "HEAD", "OPTIONS", "TRACE"]
        .iter()
        .any(|safe| method.eq_ignore_ascii_case(safe))
}

/// Refuses a state-changing request that another site made the browser
/// send; safe methods always pass. `allowed` lists further origins
/// (`"https://app.example.com"`, compared exactly, ASCII case-insensitive)
/// for a request whose `Origin` is not its own `Host`, e.g. behind a proxy
/// that rewrites `Host`.
///
/// # Why, and the rules
///
/// `SameSite=Lax` (the default cookie) already keeps the session cookie
/// off cross-site POSTs, so another site cannot act *as* a logged-in user.
/// It cannot stop **login CSRF**: a page elsewhere posting to `/login` needs
/// no cookie, and logs the victim's browser into the attacker's account.
/// Browsers say where a request comes from in headers no page can set:
///
/// - `Sec-Fetch-Site` (every current browser, on every request):
///   `same-origin` for our own pages, `none` for what the user did directly
///   (typed, bookmarked), `same-site` or `cross-site` otherwise;
/// - `Origin` (on POSTs): the scheme, host and port of the page, or `null`
///   when the browser withholds it. Chromium sends `null` on same-origin
///   form posts under `Referrer-Policy: no-referrer`, and sandboxed frames
///   and some redirects send it too, so `null` alone tells nothing.
///
/// This check trusts `Sec-Fetch-Site` when present (browsers send it to
/// HTTPS and `localhost` origins); without it (plain HTTP, an older
/// browser, a non-browser client) it compares `Origin` with the request's
/// `Host` (or the allowed origins you name) and refuses `null`. A request
/// with neither header is let through: browsers send `Origin` on every
/// cross-origin POST, so it comes from our own page in an older browser or
/// from a client that is not a browser, which carries no victim's cookie.
/// `same-site` is refused: a sibling subdomain is another origin, often
/// another application.
///
/// A per-session CSRF token is still needed on top when the cookie is not
/// `SameSite=Lax` or `Strict`, or when older browsers that send neither
/// header must be defended.
///
/// # Errors
/// [`CrossSiteRequest`] saying which header gave the request away.
///
/// # Example
/// ```
/// use latchkey::{check_origin, CrossSiteRequest, FetchHeaders};
/// // Chromium posting our own login form under `Referrer-Policy: no-referrer`.
/// let ours = FetchHeaders {
///     method: "POST",
///     sec_fetch_site: Some("same-origin"),
///     origin: Some("null"),
///     host: Some("127.0.0.1:8080"),
/// };
/// assert!(check_origin(&ours, &[]).is_ok());
/// // An older browser: the Origin must match the Host.
/// let old = FetchHeaders { sec_fetch_site: None, origin: Some("http://127.0.0.1:8080"), ..ours };
/// assert!(check_origin(&old, &[]).is_ok());
/// let forged = FetchHeaders { origin: Some("https://evil.example"), ..old };
/// assert_eq!(check_origin(&forged, &[]), Err(CrossSiteRequest::Origin));
/// let opaque = FetchHeaders { origin: Some("null"), ..old };
/// assert_eq!(check_origin(&opaque, &[]), Err(CrossSiteRequest::NullOrigin));
/// ```
pub fn check_origin(headers: &FetchHeaders<'_>, allowed: &[&str]) -> Result<(), CrossSiteRequest> {
    if !is_unsafe(headers.method) {
        return Ok(());
    }
    match headers.sec_fetch_site.map(str::trim) {
        Some(site)
            if site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none") =>
        {
            return Ok(());
        }
        Some(_) => return Err(CrossSiteRequest::FetchSite),
        None => {}
    }
    let Some(origin) = headers.origin.map(str::trim) else {
        return Ok(());
    };
    if origin.eq_ignore_ascii_case("null") {
        return Err(CrossSiteRequest::NullOrigin);
    }
    let own = headers.host.map(str::trim).is_some_and(|host| {
        !host.is_empty()
            && ["http://", "https://"].iter().any(|scheme| {
                origin.len() == scheme.len() + host.len()
                    && origin
                        .get(..scheme.len())
                        .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
                    && origin
                        .get(scheme.len()..)
                        .is_some_and(|h| h.eq_ignore_ascii_case(host))
            })
    });
    if own || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        Ok(())
    } else {
        Err(CrossSiteRequest::Origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post<'a>(site: Option<&'a str>, origin: Option<&'a str>) -> FetchHeaders<'a> {
        FetchHeaders {
            method: "POST",
            sec_fetch_site: site,
            origin,
            host: Some("app.example:8443"),
        }
    }

    #[test]
    fn safe_methods_always_pass() {
        for method in ["GET", "head", "OPTIONS", "TRACE"] {
            let h = FetchHeaders {
                method,
                ..post(Some("cross-site"), Some("null"))
            };
            assert_eq!(check_origin(&h, &[]), Ok(()), "{method}");
        }
        for method in ["POST", "put", "PATCH", "DELETE", "PROPFIND"] {
            let h = FetchHeaders {
                method,
                ..post(Some("cross-site"), None)
            };
            assert!(check_origin(&h, &[]).is_err(), "{method}");
        }
    }

    #[test]
    fn sec_fetch_site_decides_when_present() {
        use CrossSiteRequest::FetchSite;
        let cases = [
            (Some("same-origin"), Some("null"), Ok(())),
            (Some("same-origin"), Some("https://evil.example"), Ok(())),
            (Some("none"), None, Ok(())),
            (
                Some("same-site"),
                Some("https://app.example:8443"),
                Err(FetchSite),
            ),
            (
                Some("cross-site"),
                Some("https://app.example:8443"),
                Err(FetchSite),
            ),
            (Some("tomorrow's value"), None, Err(FetchSite)),
            (Some(""), None, Err(FetchSite)),
        ];
        for (site, origin, want) in cases {
            assert_eq!(
                check_origin(&post(site, origin), &[]),
                want,
                "{site:?} {origin:?}"
            );
        }
    }

    #[test]
    fn without_sec_fetch_site_the_origin_must_be_ours() {
        use CrossSiteRequest::{NullOrigin, Origin};
        let cases = [
            (Some("https://app.example:8443"), Ok(())),
            (Some("HTTP://APP.EXAMPLE:8443"), Ok(())),
            (Some("https://app.example"), Err(Origin)),
            (Some("https://app.example:8443.evil"), Err(Origin)),
            (Some("https://evil.example"), Err(Origin)),
            (Some("null"), Err(NullOrigin)),
            (Some(""), Err(Origin)),
            (None, Ok(())),
        ];
        for (origin, want) in cases {
            assert_eq!(check_origin(&post(None, origin), &[]), want, "{origin:?}");
        }
        // No Host to compare with: only the allowed list.
        let h = FetchHeaders {
            host: None,
            ..post(None, Some("https://app.example:8443"))
        };
        assert_eq!(check_origin(&h, &[]), Err(Origin));
        assert_eq!(check_origin(&h, &["https://app.example:8443"]), Ok(()));
    }

    #[test]
    fn multibyte_hosts_and_origins_do_not_panic() {
        let h = FetchHeaders {
            method: "POST",
            sec_fetch_site: None,
            // "https:/" and a two-byte character straddling the scheme.
            origin: Some("https:/éab"),
            host: Some("ab"),
        };
        assert_eq!(check_origin(&h, &[]), Err(CrossSiteRequest::Origin));
    }
}
