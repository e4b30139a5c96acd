//! latchkey beside its peers and floors, timed in interleaved rounds: one
//! binary, one harness (`latchkey_peers::harness`), a subcommand per group
//! of cases. Each run records its figures in the results file
//! (`latchkey_peers::results`) that `report` turns into BENCHMARKS.md's
//! table.
//!
//! ```text
//! cargo run --release -p latchkey-peers --bin timing -- all             # every group but steps and redis
//! cargo run --release -p latchkey-peers --bin timing -- load save       # some groups
//! cargo run --release -p latchkey-peers --bin timing -- load --size 100000 --rounds 5
//! LATCHKEY_REDIS_URL=redis://127.0.0.1:6379/0 \
//!   cargo run --release -p latchkey-peers --features redis --bin timing -- redis
//! cargo run --release -p latchkey-peers --bin timing -- all --quick     # every case once, small: does it run?
//! ```
//!
//! Groups: `id`, `load`, `steps` (what a load adds to its floor, step by
//! step; printed only), `save`, `refuse`, `tickets`, `file`, `redis`
//! (feature `redis`, and skipped with a notice when `LATCHKEY_REDIS_URL`
//! is unset). `--quick` runs a hundredth of the operations over small
//! stores, one round, and records nothing.

mod file;
mod load;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod stateless;
mod steps;

/// The command line's options.
#[derive(Clone, Debug, Default)]
pub(crate) struct Opts {
    rounds: Option<usize>,
    size: Option<usize>,
    quick: bool,
    /// Whether figures go to the results file (not in `--quick` runs).
    record: bool,
}

impl Opts {
    /// Rounds: as given, else one when quick, else `default`.
    fn rounds(&self, default: usize) -> usize {
        self.rounds
            .unwrap_or(if self.quick { 1 } else { default })
            .max(1)
    }

    /// Operations per case per round: `full`, or a hundredth when quick.
    fn ops(&self, full: u64) -> u64 {
        if self.quick {
            (full / 100).max(10)
        } else {
            full
        }
    }

    /// Store sizes: as given, else 1000 when quick, else `default`.
    fn sizes(&self, default: &[usize]) -> Vec<usize> {
        match self.size {
            Some(n) => vec![n.max(16)],
            None if self.quick => vec![1000],
            None => default.to_vec(),
        }
    }
}

/// Every group, in the order `all` runs them (without `steps`).
const GROUPS: [&str; 8] = [
    "id", "tickets", "save", "refuse", "load", "file", "redis", "steps",
];

fn run(group: &str, opts: &Opts) -> Result<(), String> {
    match group {
        "id" => stateless::id(opts),
        "tickets" => stateless::tickets(opts),
        "save" => memory::save(opts),
        "refuse" => memory::refuse(opts),
        "load" => load::run(opts),
        "steps" => steps::run(opts),
        "file" => file::run(opts),
        #[cfg(feature = "redis")]
        "redis" => redis::run(opts),
        #[cfg(not(feature = "redis"))]
        "redis" => println!(
            "redis: skipped, built without feature `redis` (add `--features redis`, and set LATCHKEY_REDIS_URL)"
        ),
        other => return Err(format!("unknown group {other:?}")),
    }
    Ok(())
}

/// Parses the command line into groups and options.
fn parse(args: impl Iterator<Item = String>) -> Result<(Vec<String>, Opts), String> {
    let mut opts = Opts::default();
    let mut groups = Vec::new();
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--rounds" => opts.rounds = Some(number("--rounds")?),
            "--size" => opts.size = Some(number("--size")?),
            "--quick" => opts.quick = true,
            "all" => groups.extend(GROUPS[..7].iter().map(|g| g.to_string())),
            g if GROUPS.contains(&g) => groups.push(g.to_owned()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if groups.is_empty() {
        return Err("name a group".into());
    }
    opts.record = !opts.quick;
    Ok((groups, opts))
}

fn main() {
    let (groups, opts) = match parse(std::env::args().skip(1)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "{e}\nusage: timing GROUP... [--rounds N] [--size N] [--quick]\n\
                 groups: all, {}",
                GROUPS.join(", ")
            );
            std::process::exit(2);
        }
    };
    for g in &groups {
        if let Err(e) = run(g, &opts) {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
    if opts.record {
        println!(
            "figures recorded in {}; `cargo run -p latchkey-peers --bin report` prints the table",
            latchkey_peers::results::path().display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> impl Iterator<Item = String> {
        a.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn the_command_line_names_groups_and_options() {
        let Ok((groups, opts)) = parse(args(&["load", "--rounds", "3", "--size", "1000"])) else {
            panic!("refused a good command line")
        };
        assert_eq!(groups, ["load"]);
        assert_eq!(
            (opts.rounds(15), opts.sizes(&[1]), opts.record),
            (3, vec![1000], true)
        );
        let Ok((groups, opts)) = parse(args(&["all", "--quick"])) else {
            panic!("refused a good command line")
        };
        assert_eq!(groups.len(), 7);
        assert!(!groups.contains(&"steps".to_string()));
        assert!(!opts.record && opts.rounds(15) == 1 && opts.ops(100_000) == 1000);
        assert!(parse(args(&[])).is_err());
        assert!(parse(args(&["lod"])).is_err());
        assert!(parse(args(&["load", "--rounds"])).is_err());
    }

    /// Every group once, small and quick: each case's own checks pass.
    /// (Redis is skipped here without `LATCHKEY_REDIS_URL`: the timer is
    /// not a test of the store, which `tests/redis_store.rs` is.)
    #[test]
    fn every_group_runs_quick() {
        let Ok((groups, opts)) = parse(args(&["all", "steps", "--quick"])) else {
            panic!("refused a good command line")
        };
        for g in groups.iter().filter(|g| *g != "redis") {
            assert_eq!(run(g, &opts), Ok(()));
        }
    }
}
