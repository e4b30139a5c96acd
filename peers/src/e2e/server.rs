//! `e2e serve`: one stack over one store behind axum, on 127.0.0.1, until
//! its standard input closes.
//!
//! Both stacks answer the same three routes, so the client sends both the
//! same bytes:
//!
//! | route | what it does | without a logged-in session |
//! |---|---|---|
//! | `POST /login/{user}` | logs `user` in; the response sets the cookie | logs in |
//! | `GET /counter` | the session's counter (0 when unset), as text | 401 |
//! | `POST /counter` | adds 1 to the counter, saves, answers the new value | 401 |
//!
//! - **latchkey**: [`latchkey_tower::SessionLayer`] over a
//!   `StoreManager<MemoryStore>`, or over Redis `SessionLayer::from_async`
//!   on an `AsyncStoreManager<AsyncRedisStore>` (one multiplexed
//!   connection, `.with_sleep(tokio::time::sleep)`); default policy,
//!   default cookie, default attempts unless `--max-attempts`. The
//!   handlers take `Authenticated` and call `SessionHandle::update`.
//! - **latchkey-sync** (Redis only): the same handlers through
//!   `SessionLayer::new` on a `StoreManager<RedisStore>` (its pool of
//!   blocking connections, each call on tokio's blocking pool), for
//!   comparison with the async driver.
//! - **tower-sessions**: `SessionManagerLayer` over its `MemoryStore`
//!   (tower-sessions 0.15) or `tower-sessions-redis-store` on a fred pool of
//!   6 connections, as that store's docs set it up (tower-sessions 0.14, the
//!   newest that store implements); the handlers read the user, then
//!   `Session::get` and `Session::insert` the counter.

use std::io::{self, Read as _, Write as _};
use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};

/// The data key of the counter.
const COUNTER: &str = "counter";
/// tower-sessions' data key of the logged-in user (latchkey keeps the user
/// in the session's metadata).
const USER: &str = "user";

/// Which session library.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stack {
    /// latchkey-tower; over Redis through `SessionLayer::from_async` on an
    /// `AsyncStoreManager<AsyncRedisStore>` (awaited in place).
    Latchkey,
    /// latchkey-tower's synchronous path over Redis: `SessionLayer::new` on
    /// a `StoreManager<RedisStore>` (a pool of blocking connections, each
    /// call on tokio's blocking pool). Redis only: over memory it is
    /// [`Stack::Latchkey`].
    LatchkeySync,
    /// tower-sessions.
    TowerSessions,
}

impl Stack {
    /// Every stack, in the order of results.
    pub const ALL: [Stack; 3] = [Stack::Latchkey, Stack::LatchkeySync, Stack::TowerSessions];

    /// The name on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Stack::Latchkey => "latchkey",
            Stack::LatchkeySync => "latchkey-sync",
            Stack::TowerSessions => "tower-sessions",
        }
    }

    /// The stack named `s`.
    pub fn parse(s: &str) -> Option<Stack> {
        Stack::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether this stack runs over `store`.
    pub fn runs_on(self, store: Store) -> bool {
        self != Stack::LatchkeySync || store == Store::Redis
    }
}

/// Which session store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// In the server's memory.
    Memory,
    /// The Redis at `LATCHKEY_REDIS_URL`.
    Redis,
}

impl Store {
    /// The name on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Store::Memory => "memory",
            Store::Redis => "redis",
        }
    }

    /// The store named `s`.
    pub fn parse(s: &str) -> Option<Store> {
        [Store::Memory, Store::Redis]
            .into_iter()
            .find(|k| k.name() == s)
    }
}

/// What `serve` was asked to run.
#[derive(Debug)]
pub struct ServeArgs {
    /// The session library.
    pub stack: Stack,
    /// Its store.
    pub store: Store,
    /// The port on 127.0.0.1 (0: any free one).
    pub port: u16,
    /// The CPU (index among those allowed) the whole server is pinned to.
    pub cpu: Option<usize>,
    /// tokio worker threads.
    pub workers: usize,
    /// Redis, for [`Store::Redis`].
    pub redis_url: Option<String>,
    /// latchkey's attempts for a conflicting save (`None`: its default).
    pub max_attempts: Option<u32>,
    /// latchkey's `RedisStore::with_max_idle_connections` (`None`: its
    /// default).
    pub redis_idle: Option<usize>,
    /// latchkey's Redis key prefix (unique per run, so runs never meet).
    pub prefix: String,
}

impl ServeArgs {
    /// Parses `serve`'s arguments (after the word `serve`).
    pub fn parse(args: &[String]) -> Result<ServeArgs, String> {
        let mut out = ServeArgs {
            stack: Stack::Latchkey,
            store: Store::Memory,
            port: 0,
            cpu: None,
            workers: 1,
            redis_url: std::env::var("LATCHKEY_REDIS_URL").ok(),
            max_attempts: None,
            redis_idle: None,
            prefix: "latchkey-e2e:".into(),
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = || format!("bad value for {flag}: {value}");
            match flag.as_str() {
                "--stack" => out.stack = Stack::parse(value).ok_or_else(bad)?,
                "--store" => out.store = Store::parse(value).ok_or_else(bad)?,
                "--port" => out.port = value.parse().map_err(|_| bad())?,
                "--cpu" => out.cpu = Some(value.parse().map_err(|_| bad())?),
                "--workers" => out.workers = value.parse().map_err(|_| bad())?,
                "--max-attempts" => out.max_attempts = Some(value.parse().map_err(|_| bad())?),
                "--redis-idle" => out.redis_idle = Some(value.parse().map_err(|_| bad())?),
                "--prefix" => out.prefix.clone_from(value),
                _ => return Err(format!("unknown serve flag {flag}")),
            }
        }
        Ok(out)
    }
}

/// Runs the server until standard input closes, then exits the process.
/// Prints `listening PORT` on standard output once it accepts connections.
pub fn serve(args: ServeArgs) -> ! {
    if let Some(cpu) = args.cpu {
        // Threads inherit the affinity of the thread that makes them: the
        // runtime's workers and tokio's blocking pool all stay on this CPU.
        latchkey_peers::pin_to_cpu(cpu);
    }
    // The driver closes our stdin when it is done (or dies): exit then.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = io::stdin().lock().read_to_end(&mut sink);
        std::process::exit(0);
    });
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => fail(&format!("no tokio runtime: {e}")),
    };
    rt.block_on(async move {
        let app = match args.stack {
            Stack::Latchkey | Stack::LatchkeySync => latchkey_app(&args),
            Stack::TowerSessions => tower_app(&args).await,
        };
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await {
            Ok(l) => l,
            Err(e) => fail(&format!("cannot listen on 127.0.0.1:{}: {e}", args.port)),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "listening {port}");
        let _ = out.flush();
        drop(out);
        if let Err(e) = axum::serve(listener, app).await {
            fail(&format!("server failed: {e}"));
        }
    });
    std::process::exit(0)
}

fn fail(message: &str) -> ! {
    eprintln!("e2e serve: {message}");
    std::process::exit(2)
}

fn latchkey_app(args: &ServeArgs) -> Router {
    use latchkey::{
        AsyncRedisStore, AsyncStoreManager, CookieConfig, MemoryStore, RedisStore, SessionManager,
        StoreManager,
    };
    use latchkey_tower::{Authenticated, SessionError, SessionHandle, SessionLayer};

    async fn login(
        handle: SessionHandle,
        Path(user): Path<String>,
    ) -> Result<&'static str, SessionError> {
        handle.login(&user).await?;
        Ok("ok")
    }
    async fn read(auth: Authenticated) -> String {
        let n: u64 = auth.session().get(COUNTER).ok().flatten().unwrap_or(0);
        n.to_string()
    }
    async fn increment(auth: Authenticated) -> Result<String, SessionError> {
        let n = auth
            .handle()
            .update(|s| {
                let n = s.get::<u64>(COUNTER)?.unwrap_or(0) + 1;
                s.insert(COUNTER, &n)?;
                Ok(n)
            })
            .await?;
        Ok(n.to_string())
    }

    let mut layer = match (args.store, args.stack) {
        (Store::Memory, _) => {
            let manager: Arc<dyn SessionManager> = Arc::new(StoreManager::new(MemoryStore::new()));
            SessionLayer::new(manager, CookieConfig::default())
        }
        (Store::Redis, Stack::LatchkeySync) => {
            let url = redis_url(args);
            match RedisStore::open(&url) {
                Ok(store) => {
                    let mut store = store.with_prefix(args.prefix.clone());
                    if let Some(n) = args.redis_idle {
                        store = store.with_max_idle_connections(n);
                    }
                    let manager: Arc<dyn SessionManager> = Arc::new(StoreManager::new(store));
                    SessionLayer::new(manager, CookieConfig::default())
                }
                Err(e) => fail(&format!("latchkey RedisStore: {e}")),
            }
        }
        (Store::Redis, _) => {
            let url = redis_url(args);
            match AsyncRedisStore::open(&url) {
                Ok(store) => {
                    let store = store.with_prefix(args.prefix.clone());
                    let manager = AsyncStoreManager::new(store).with_sleep(tokio::time::sleep);
                    SessionLayer::from_async(Arc::new(manager), CookieConfig::default())
                }
                Err(e) => fail(&format!("latchkey AsyncRedisStore: {e}")),
            }
        }
    };
    if let Some(n) = args.max_attempts {
        layer = layer.with_max_attempts(n);
    }
    Router::new()
        .route("/login/{user}", post(login))
        .route("/counter", get(read).post(increment))
        .layer(layer)
}

fn redis_url(args: &ServeArgs) -> String {
    match &args.redis_url {
        Some(url) => url.clone(),
        None => fail("the Redis store needs LATCHKEY_REDIS_URL"),
    }
}

/// tower-sessions' handlers, for one release of it (`$ts`): the memory
/// cases run 0.15, the Redis ones 0.14 (see the module docs).
macro_rules! tower_handlers {
    ($module:ident, $ts:ident) => {
        mod $module {
            use super::{COUNTER, USER};
            use axum::extract::Path;
            use axum::http::StatusCode;
            use $ts::Session;

            fn internal<E: std::fmt::Display>(e: E) -> StatusCode {
                eprintln!("e2e serve: tower-sessions: {e}");
                StatusCode::INTERNAL_SERVER_ERROR
            }

            pub(super) async fn login(
                session: Session,
                Path(user): Path<String>,
            ) -> Result<&'static str, StatusCode> {
                session.insert(USER, user).await.map_err(internal)?;
                Ok("ok")
            }

            async fn logged_in(session: &Session) -> Result<(), StatusCode> {
                match session.get::<String>(USER).await.map_err(internal)? {
                    Some(_) => Ok(()),
                    None => Err(StatusCode::UNAUTHORIZED),
                }
            }

            pub(super) async fn read(session: Session) -> Result<String, StatusCode> {
                logged_in(&session).await?;
                let n: u64 = session.get(COUNTER).await.map_err(internal)?.unwrap_or(0);
                Ok(n.to_string())
            }

            pub(super) async fn increment(session: Session) -> Result<String, StatusCode> {
                logged_in(&session).await?;
                let n = session
                    .get::<u64>(COUNTER)
                    .await
                    .map_err(internal)?
                    .unwrap_or(0)
                    + 1;
                session.insert(COUNTER, n).await.map_err(internal)?;
                Ok(n.to_string())
            }
        }
    };
}

tower_handlers!(ts015, tower_sessions);
tower_handlers!(ts014, tower_sessions_014);

async fn tower_app(args: &ServeArgs) -> Router {
    match args.store {
        Store::Memory => {
            let layer =
                tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default());
            Router::new()
                .route("/login/{user}", post(ts015::login))
                .route("/counter", get(ts015::read).post(ts015::increment))
                .layer(layer)
        }
        Store::Redis => {
            use tower_sessions_redis_store::fred::prelude::{ClientLike as _, Config, Pool};
            let url = redis_url(args);
            let config = match Config::from_url(&url) {
                Ok(c) => c,
                Err(e) => fail(&format!("fred: bad LATCHKEY_REDIS_URL: {e}")),
            };
            let pool = match Pool::new(config, None, None, None, 6) {
                Ok(p) => p,
                Err(e) => fail(&format!("fred pool: {e}")),
            };
            let _connection_tasks = pool.connect();
            if let Err(e) = pool.wait_for_connect().await {
                fail(&format!("fred: cannot connect: {e}"));
            }
            let store = tower_sessions_redis_store::RedisStore::new(pool);
            let layer = tower_sessions_014::SessionManagerLayer::new(store);
            Router::new()
                .route("/login/{user}", post(ts014::login))
                .route("/counter", get(ts014::read).post(ts014::increment))
                .layer(layer)
        }
    }
}
