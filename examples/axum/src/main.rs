//! latchkey behind axum: `cargo run -p latchkey-axum-example`, then open
//! http://127.0.0.1:3000 (any user name, password `latchkey`).

use std::sync::Arc;

use latchkey::{CookieConfig, MemoryStore, StoreManager};
use latchkey_axum_example::router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let manager = Arc::new(StoreManager::new(MemoryStore::new()));
    eprintln!(
        "WARNING: plain-http example: the session cookie is sent without Secure \
         (CookieConfig::danger_insecure_http). Never deploy this way."
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        router(manager, CookieConfig::danger_insecure_http()),
    )
    .await
}
