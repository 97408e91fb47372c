//! The run's record: the machine, the commit, the load, every scenario; written as JSON
//! (`benches/results/scoreboard.json`, which `scripts/scoreboard_tables.py` turns into
//! the tables of PERFORMANCE.md and README.md) and printed as text while it runs.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::harness::{Role, Scenario};

/// Where and on what the scoreboard ran.
#[derive(Serialize)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// Cores this process may run on.
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub rustc: String,
}

#[derive(Serialize)]
pub struct Run {
    pub machine: Machine,
    /// `git rev-parse --short HEAD`, with `+dirty` when tracked files outside the
    /// generated ones differ from it.
    pub commit: String,
    pub started_utc: String,
    pub seconds: f64,
    /// /proc/loadavg (1, 5, 15 min) when the run started and when it ended.
    pub load_start: [f64; 3],
    pub load_end: [f64; 3],
    pub rounds: usize,
    pub scenarios: Vec<Scenario>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn output(program: &str, args: &[&str], dir: &Path) -> String {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn machine() -> Machine {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_owned(), |(_, v)| v.trim().to_owned());
    let memory_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib: (memory_kib / (1024.0 * 1024.0) * 10.0).round() / 10.0,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        rustc: output("rustc", &["-V"], Path::new(".")),
    }
}

pub fn load_average() -> [f64; 3] {
    let text = read("/proc/loadavg");
    let mut fields = text
        .split_whitespace()
        .map(|f| f.parse::<f64>().unwrap_or(f64::NAN));
    [(); 3].map(|_| fields.next().unwrap_or(f64::NAN))
}

pub fn commit(repo: &Path) -> String {
    let head = output("git", &["rev-parse", "--short", "HEAD"], repo);
    let changed = output(
        "git",
        &[
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":!benches/results",
            ":!PERFORMANCE.md",
            ":!README.md",
        ],
        repo,
    );
    if changed.is_empty() || changed == "unknown" {
        head
    } else {
        format!("{head}+dirty")
    }
}

pub fn now_utc() -> String {
    output("date", &["-u", "+%Y-%m-%d %H:%M UTC"], Path::new("."))
}

/// `1234567` → `1,234,567`.
pub fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A cost in ns, with a readable unit.
pub fn cost(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns >= 100.0 {
        format!("{ns:.0} ns")
    } else {
        format!("{ns:.2} ns")
    }
}

/// Per second, from ns per unit.
pub fn rate(ns: f64) -> String {
    let per_s = 1e9 / ns;
    if per_s >= 1e6 {
        format!("{:.2}M/s", per_s / 1e6)
    } else {
        format!("{:.0}k/s", per_s / 1e3)
    }
}

/// A ratio with two significant digits below 0.1, two decimals above.
pub fn ratio(x: f64) -> String {
    if x < 0.1 {
        format!("{x:.3}")
    } else {
        format!("{x:.2}")
    }
}

/// The scenario as text (progress on stderr while the scoreboard runs).
pub fn scenario_text(scenario: &Scenario) -> String {
    let mut out = format!(
        "\n{} — ns per {}, median of {} rounds; ratio = its time ÷ fanout's in the same round (> 1: fanout faster)\n",
        scenario.title, scenario.unit, scenario.rounds
    );
    for row in &scenario.rows {
        let role = match row.role {
            Role::Fanout => "",
            Role::Peer => " (peer)",
            Role::Floor => " (floor)",
        };
        let rate = if scenario.rate {
            format!(" = {}", rate(row.cost_ns.median))
        } else {
            String::new()
        };
        out += &format!(
            "  {:<32} {:>10}{:<12} ratio {:>6}× [{}–{}]\n",
            format!("{}{role}", row.name),
            cost(row.cost_ns.median),
            rate,
            ratio(row.ratio.median),
            ratio(row.ratio.min),
            ratio(row.ratio.max)
        );
    }
    out
}
