//! The layer end to end through `tower::ServiceExt::oneshot`: no network,
//! no sleeps.

mod asynchronous;
mod concurrency;
mod csrf;
mod dispatch;
mod flash;
mod origin;
mod remember;
mod step_up;
mod story;
mod support;
mod tickets;
