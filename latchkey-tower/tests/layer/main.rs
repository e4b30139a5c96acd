//! The layer end to end through `tower::ServiceExt::oneshot`: no network,
//! no sleeps.

mod concurrency;
mod dispatch;
mod origin;
mod story;
mod support;
mod tickets;
