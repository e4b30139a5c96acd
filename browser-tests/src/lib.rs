//! The demo (`latchkey-demo`) driven by a real headless Chromium through
//! WebDriver. Everything is in `tests/browser.rs`; `bash .ci/browser` runs
//! it (it installs Chromium and chromedriver when missing).
