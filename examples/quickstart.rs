//! The session lifecycle in one run: create, load, save, login (rotation
//! with grace), logout, expiry. Prints what happens and why.
//!
//! Run with `cargo run --example quickstart`.

use std::sync::Arc;
use std::time::Duration;

use latchkey::{
    Error, Event, ManualClock, MemoryStore, NewSession, Observer, Policy, SessionManager,
    StoreManager,
};

#[derive(Debug)]
struct PrintEvents;

impl Observer for PrintEvents {
    fn on_event(&self, event: &Event) {
        println!("  event: {event}");
    }
}

fn main() -> Result<(), Error> {
    let clock = ManualClock::starting_now();
    let manager = StoreManager::new(MemoryStore::new().with_clock(Arc::new(clock.clone())))
        .with_policy(Policy::nist_aal2())
        .with_clock(Arc::new(clock.clone()))
        .with_observer(Arc::new(PrintEvents));

    println!("create an anonymous session");
    let anon = manager.create(NewSession::new().with_device("quickstart"))?;
    println!("  issued {anon:?}");

    println!("put something in the cart and save");
    let mut session = manager.load(anon.token())?.session;
    session.insert("cart", &["book", "lamp"])?;
    manager.save(&mut session)?;

    println!("log in as alice: the ID rotates, the cart stays");
    let user = manager.login(&mut session, "alice")?;
    let again = manager.load(user.token())?.session;
    println!(
        "  user={:?} cart={:?}",
        again.user(),
        again.get::<Vec<String>>("cart")?
    );

    println!("the pre-login cookie, 5 s later (a planted cookie must not log anyone in)");
    clock.advance(Duration::from_secs(5));
    match manager.load(anon.token()) {
        Err(e) => println!("  refused: {e} [{}]", e.reason()),
        Ok(_) => println!("  unexpectedly accepted"),
    }

    println!("a routine rotation: in-flight requests keep working for the grace window");
    let mut session = manager.load(user.token())?.session;
    let rotated = manager.rotate(&mut session)?;
    let late = manager.load(user.token())?;
    println!(
        "  the old cookie resolved to {} and asks to reissue: {}",
        late.session.fingerprint(),
        late.reissue.is_some()
    );

    println!("the old cookie again, after the grace window");
    clock.advance(Duration::from_secs(60));
    match manager.load(user.token()) {
        Err(e) => println!("  refused: {e} [{}]", e.reason()),
        Ok(_) => println!("  unexpectedly accepted"),
    }
    match manager.load(rotated.token()) {
        Err(e) => println!(
            "  and its successor, revoked as possibly stolen: {e} [{}]",
            e.reason()
        ),
        Ok(_) => println!("  unexpectedly, its successor still works"),
    }

    println!("a fresh login, then 2 idle hours");
    let fresh = manager.create(NewSession::new().with_user("bob"))?;
    clock.advance(Duration::from_secs(2 * 3600));
    match manager.load(fresh.token()) {
        Err(e) => println!("  refused: {e} [{}]", e.reason()),
        Ok(_) => println!("  unexpectedly accepted"),
    }
    Ok(())
}
