//! The scoreboard: every headline comparison of fanout against its peers and floors, in
//! one process and one run, as ratios measured in the same rounds.
//!
//! ```text
//! cargo run --release -p fanout-benches --bin scoreboard          # about 2 minutes on 2 cores
//! python3 scripts/scoreboard_tables.py                             # tables into the docs
//! ```
//!
//! Scenarios (each file's docs say what every contender does):
//! - callback fan-out at 16, 256 and 4,096 subscribers (`callback.rs`);
//! - one subscriber among 100,000 topics, hot and cold (`narrow.rs`);
//! - channel fan-out at 1, 256 and 4,096 subscribers on one thread, and with a consumer
//!   thread at 256 and 4,096 (`channel.rs`);
//! - subscribe, subscribe + unsubscribe with 1 and 2 callers, `apply` batches, one client
//!   with 20,000 topics, register
//!   (`mutations.rs`).
//!
//! Method (`harness.rs`): per scenario, one untimed warm-up round, then `--rounds`
//! (default 25) rounds in which every contender runs once, starting with a different one
//! each round; ratios are taken within a round and summarised by their median, minimum
//! and maximum. The run's record — machine, commit, load average at start and end, every
//! row — goes to `benches/results/scoreboard.json` (a full run only; `--only` and
//! `--rounds` below 25 print without writing unless `--out FILE` is given).
//!
//! Options: `--rounds N`, `--only SUBSTRING` (scenario ids containing it, e.g.
//! `callback`, `channel_st`, `one_subscriber`, `pairs`), `--out FILE`.

mod callback;
mod channel;
mod harness;
mod mutations;
mod narrow;
mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use harness::Scenario;

const DEFAULT_ROUNDS: usize = 25;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|at| args.get(at + 1).expect("option needs a value").clone())
    };
    let rounds: usize =
        value("--rounds").map_or(DEFAULT_ROUNDS, |r| r.parse().expect("--rounds N"));
    let only = value("--only");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out: Option<PathBuf> = value("--out").map(PathBuf::from).or_else(|| {
        (only.is_none() && rounds >= DEFAULT_ROUNDS)
            .then(|| repo.join("benches/results/scoreboard.json"))
    });
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release");
    }

    let machine = report::machine();
    let started_utc = report::now_utc();
    let load_start = report::load_average();
    let commit = report::commit(repo);
    eprintln!(
        "scoreboard: {} × {}, commit {commit}, load {:.2} {:.2} {:.2}, {rounds} rounds",
        machine.cores, machine.cpu, load_start[0], load_start[1], load_start[2]
    );
    let start = Instant::now();

    type Group = fn(usize) -> Vec<Scenario>;
    let groups: [(&str, Group); 6] = [
        ("callback", callback::scenarios),
        ("one_subscriber", narrow::scenarios),
        ("channel_st", channel::one_thread),
        ("channel_st_frame", channel::one_thread_preencoded),
        ("channel_mt", channel::consumer_thread),
        ("mutations", mutations::scenarios),
    ];
    let wanted = |name: &str| {
        only.as_deref().map_or(true, |o| {
            name.contains(o)
                || o.contains(name)
                || (name == "mutations"
                    && ["subscribe", "pairs", "apply", "one_client", "register"]
                        .iter()
                        .any(|m| o.starts_with(m)))
        })
    };
    let mut scenarios: Vec<Scenario> = groups
        .iter()
        .filter(|(name, _)| wanted(name))
        .flat_map(|(_, group)| group(rounds))
        .collect();
    if let Some(o) = &only {
        scenarios.retain(|s| {
            s.id.contains(o.as_str())
                || o.contains(s.id.as_str())
                || groups.iter().any(|(g, _)| g == o)
        });
    }

    let run = report::Run {
        machine,
        commit,
        started_utc,
        seconds: start.elapsed().as_secs_f64(),
        load_start,
        load_end: report::load_average(),
        rounds,
        scenarios,
    };
    eprintln!(
        "\nscoreboard: {:.0} s, load at the end {:.2} {:.2} {:.2}",
        run.seconds, run.load_end[0], run.load_end[1], run.load_end[2]
    );
    if let Some(path) = out {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&run).unwrap() + "\n").unwrap();
        eprintln!(
            "wrote {} (docs: python3 scripts/scoreboard_tables.py)",
            path.display()
        );
    }
}
