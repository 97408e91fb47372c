//! What every loom model file shares: the model runner and the fixed hash seeds.
#![cfg(loom)]

/// Gives every `ahash::RandomState` made in this process the same seeds.
///
/// Loom replays a model many times and requires each run to make the same sequence of
/// loom operations. Iterating a `HashMap` with fresh random seeds (the writer closing
/// sinks at shutdown, or sweeping) would differ between runs and loom would abort with
/// "Is the model fully deterministic?". The engine itself fixes its client map's seeds
/// under `cfg(loom)` (`client_map_hasher` in `src/engine/writer.rs`, added after this
/// model found the problem); this keeps every other `ahash::RandomState` a model makes
/// deterministic too.
pub struct FixedSeeds;

impl ahash::random_state::RandomSource for FixedSeeds {
    fn gen_hasher_seed(&self) -> usize {
        0x5eed
    }
}

/// Runs `body` under loom, bounding preemptions to 2 unless `LOOM_MAX_PREEMPTIONS` says
/// otherwise.
pub fn model<F>(body: F)
where
    F: Fn() + Sync + Send + 'static,
{
    // `Err(true)`: another test set it first. `Err(false)` would mean a `RandomState`
    // was made before any test got here.
    if let Err(false) = ahash::random_state::set_random_source(FixedSeeds) {
        panic!("ahash's default random source is already in use");
    }
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&runs);
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        body();
    });
    eprintln!(
        "explored {} interleavings",
        runs.load(std::sync::atomic::Ordering::Relaxed)
    );
}
