//! Two demo instances on one PostgreSQL table (`--store postgres:PARAMS`,
//! feature `postgres`).
//!
//! The test needs a PostgreSQL server, so it is `#[ignore]`d unless asked
//! for (`--include-ignored`; `.ci/postgres` does). It uses the database in
//! `LATCHKEY_POSTGRES_URL` if set; otherwise it starts a throwaway cluster
//! of its own with the server binaries under `/usr/lib/postgresql/*/bin`
//! (or on `PATH`), listening on a Unix socket in a temporary directory only
//! (no TCP port to collide with anything), as the user `postgres` when run
//! as root (PostgreSQL refuses to run as root). Without either it fails,
//! saying why.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::two_instances_share_sessions;

const URL_VAR: &str = "LATCHKEY_POSTGRES_URL";

/// Where the PostgreSQL server binaries are: beside `pg_ctl` on `PATH`, or
/// Debian's newest `/usr/lib/postgresql/*/bin`.
fn pg_bin() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|d| d.join("pg_ctl").is_file() && d.join("initdb").is_file());
    if let Some(dir) = on_path {
        return std::fs::canonicalize(dir.join("pg_ctl"))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or(dir);
    }
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").is_file())
        .collect();
    // Major versions as numbers: 9.6 < 10 < 15.
    debian.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.split('.').next()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    debian.pop().unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or under \
             /usr/lib/postgresql/*/bin, and {URL_VAR} is unset: install postgresql \
             or point {URL_VAR} at a database (.ci/postgres does both)"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Runs a server binary, as `postgres` when we are root.
fn as_server_user(program: &Path, args: &[&str]) {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let status = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{} {args:?}: {e}", program.display()));
    assert!(status.success(), "{} {args:?}: {status}", program.display());
}

/// A throwaway PostgreSQL cluster on a Unix socket in a temporary
/// directory; stopped and removed on drop.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
}

impl Cluster {
    fn start() -> Cluster {
        let bin = pg_bin();
        let dir = std::env::temp_dir().join(format!(
            "latchkey-demo-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir(&dir).unwrap();
        let cluster = Cluster { bin, dir };
        if is_root() {
            let _ = Command::new("useradd")
                .args(["--system", "--no-create-home", "postgres"])
                .stderr(Stdio::null())
                .status();
            let status = Command::new("chown")
                .arg("postgres")
                .arg(&cluster.dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown postgres {}", cluster.dir.display());
        }
        let data = cluster.data();
        as_server_user(
            &cluster.bin.join("initdb"),
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        // A Unix socket only: no TCP port, so nothing to collide with.
        let conf = format!(
            "listen_addresses = ''\nunix_socket_directories = '{}'\nfsync = off\n",
            cluster.dir.display()
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(Path::new(&data).join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut f, conf.as_bytes()).unwrap();
        let log = cluster.dir.join("server.log");
        as_server_user(
            &cluster.bin.join("pg_ctl"),
            &["-D", &data, "-l", &log.to_string_lossy(), "start", "-w"],
        );
        cluster
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn params(&self) -> String {
        format!(
            "host={} port=5432 user=postgres dbname=postgres",
            self.dir.display()
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = command
            .args(["-D", &self.data(), "stop", "-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `--store` argument for the test database, and the cluster behind
/// it if the test started one (kept alive as long as the returned guard).
fn postgres_store() -> (String, Option<Cluster>) {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => (format!("postgres:{url}"), None),
        _ => {
            let cluster = Cluster::start();
            (format!("postgres:{}", cluster.params()), Some(cluster))
        }
    }
}

#[test]
#[ignore = "needs PostgreSQL: its server binaries or LATCHKEY_POSTGRES_URL; pass --include-ignored (.ci/postgres does)"]
fn two_instances_share_sessions_through_postgres() {
    let (store, _cluster) = postgres_store();
    let (a, b, other) = two_instances_share_sessions(&store);

    // The log and the footer name the store, never its parameters.
    let page = a.get("/", Some(&other)).body;
    assert!(page.contains("postgres, table latchkey_sessions"), "{page}");
    let label = b.log_lines("store: ");
    assert!(
        label.iter().any(|l| l.contains("store: postgres")),
        "{label:?}"
    );
    assert!(!label.iter().any(|l| l.contains("user=")), "{label:?}");
}

#[test]
fn an_unreachable_server_is_a_sentence_without_the_password() {
    // A port nothing listens on: the demo must exit, not wait.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let store = format!("postgres:host=127.0.0.1 port={port} user=app password=hunter2 dbname=app");
    let (status, stderr) = super::run_to_exit(&["--port", "0", "--store", &store]);
    assert!(!status.success(), "{status}: {stderr}");
    assert!(stderr.contains("login_server: "), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
