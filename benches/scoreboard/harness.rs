//! Interleaved rounds and same-round ratios: the measuring method of the scoreboard.
//!
//! A scenario is a set of contenders doing the same work: fanout first (the reference),
//! then its peers and floors. One round runs every contender once, back to back, starting
//! with a different one each round; a contender's cost in a round is its time divided by
//! the units of work it did (deliveries, mutations, clients). The ratio of a peer to
//! fanout is taken *within* a round, so a disturbance from another process, which lasts
//! seconds, hits both sides of a ratio instead of one whole contender; the scoreboard
//! prints the median of those per-round ratios with their minimum and maximum.

use std::time::{Duration, Instant};

use serde::Serialize;

/// What a contender is to fanout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// fanout itself (the first contender is the reference of every ratio).
    Fanout,
    /// Another library or a hand-rolled registry a user would write instead.
    Peer,
    /// The least the work can cost (no registry, or a registry with no features).
    Floor,
}

/// One timed run: how much work, in how long.
pub struct Sample {
    pub units: u64,
    pub elapsed: Duration,
}

/// Times `work`, which returns the units of work it did.
pub fn timed(work: impl FnOnce() -> u64) -> Sample {
    let start = Instant::now();
    let units = work();
    Sample {
        units,
        elapsed: start.elapsed(),
    }
}

/// A named way of doing a scenario's work once.
pub struct Contender<'a> {
    name: &'static str,
    role: Role,
    run: Box<dyn FnMut() -> Sample + 'a>,
}

impl<'a> Contender<'a> {
    pub fn new(name: &'static str, role: Role, run: impl FnMut() -> Sample + 'a) -> Self {
        Contender {
            name,
            role,
            run: Box::new(run),
        }
    }
}

/// Median, minimum and maximum of a set of values.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    fn of(values: &mut [f64]) -> Spread {
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        let median = if values.len() % 2 == 1 {
            values[mid]
        } else {
            (values[mid - 1] + values[mid]) / 2.0
        };
        Spread {
            median,
            min: values[0],
            max: values[values.len() - 1],
        }
    }
}

/// One contender's result in a scenario.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub name: &'static str,
    pub role: Role,
    /// Cost per unit (ns) over the rounds.
    pub cost_ns: Spread,
    /// This contender's cost divided by fanout's in the same round (> 1: fanout is
    /// faster), over the rounds. 1 for the reference itself.
    pub ratio: Spread,
}

/// A scenario's result: what was measured, in which unit, and every contender's row.
#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    /// Short stable key (used by the docs' generator).
    pub id: String,
    /// What the work is, for a reader.
    pub title: String,
    /// The unit costs are per ("delivery", "mutation", "client").
    pub unit: &'static str,
    /// Print costs also as a rate (per second) when throughput is the usual reading.
    pub rate: bool,
    pub rounds: usize,
    pub rows: Vec<Row>,
}

/// Runs `contenders` in `rounds` interleaved rounds (after one untimed warm-up round) and
/// returns the scenario's rows. The first contender is the reference of the ratios.
pub fn compare(
    id: impl Into<String>,
    title: impl Into<String>,
    unit: &'static str,
    rate: bool,
    rounds: usize,
    contenders: &mut [Contender<'_>],
) -> Scenario {
    let id = id.into();
    let k = contenders.len();
    for contender in contenders.iter_mut() {
        (contender.run)();
    }
    // costs[i][round]: contender i's ns per unit in that round.
    let mut costs: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); k];
    for round in 0..rounds {
        for step in 0..k {
            let i = (step + round) % k;
            let sample = (contenders[i].run)();
            assert!(
                sample.units > 0,
                "{id}/{}: no work done",
                contenders[i].name
            );
            costs[i].push(sample.elapsed.as_nanos() as f64 / sample.units as f64);
        }
    }
    let rows = contenders
        .iter()
        .zip(&costs)
        .map(|(contender, cost)| {
            let mut ratios: Vec<f64> = cost.iter().zip(&costs[0]).map(|(c, f)| c / f).collect();
            Row {
                name: contender.name,
                role: contender.role,
                cost_ns: Spread::of(&mut cost.clone()),
                ratio: Spread::of(&mut ratios),
            }
        })
        .collect();
    let scenario = Scenario {
        id,
        title: title.into(),
        unit,
        rate,
        rounds,
        rows,
    };
    eprintln!("{}", crate::report::scenario_text(&scenario));
    scenario
}
