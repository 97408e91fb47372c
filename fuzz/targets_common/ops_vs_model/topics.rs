//! The topic names ops choose among (by index), and the model's own NATS matcher over
//! them: written independently of the engine's, and tabulated once per process rather
//! than once per input (the fuzzer runs thousands of inputs a second).

/// The engine's default topic length limit.
pub const MAX_TOPIC_LEN: usize = 256;
/// Length of the foreign topic (resolved by an engine with a larger limit).
pub const FOREIGN_TOPIC_LEN: usize = MAX_TOPIC_LEN + 44;
/// How many names [`names`] gives.
pub const NAMES: usize = 8;

/// Valid topic names — short, two tokens, non-ASCII, exactly at the length limit — then
/// wildcard patterns over them (subscribing to one is a pattern subscription;
/// broadcasting to one is a broadcast to that literal name, which patterns can match).
pub fn names() -> &'static [String; NAMES] {
    &tables().names
}

/// Whether a subscription name is a wildcard pattern (a `*` or `>` token).
fn is_pattern(name: &str) -> bool {
    name.split('.').any(|token| token == "*" || token == ">")
}

/// Whether subscription `sub` reaches a broadcast on `topic`: NATS matching, written
/// independently of the engine's (an exact name matches only itself).
fn covers(sub: &str, topic: &str) -> bool {
    fn go(p: &[&str], t: &[&str]) -> bool {
        match (p.split_first(), t.split_first()) {
            (None, None) => true,
            (Some((&">", _)), Some(_)) => true,
            (Some((&"*", p)), Some((_, t))) => go(p, t),
            (Some((a, p)), Some((b, t))) if a == b => go(p, t),
            _ => false,
        }
    }
    let p: Vec<&str> = sub.split('.').collect();
    let t: Vec<&str> = topic.split('.').collect();
    go(&p, &t)
}

/// The names, and [`is_pattern`] and [`covers`] over them.
struct Tables {
    names: [String; NAMES],
    pattern: [bool; NAMES],
    covers: [[bool; NAMES]; NAMES],
}

fn tables() -> &'static Tables {
    static TABLES: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let names = [
            "a".to_owned(),
            "b.c".to_owned(),
            "room.ü".to_owned(),
            "t".repeat(MAX_TOPIC_LEN),
            "*".to_owned(),
            "b.*".to_owned(),
            ">".to_owned(),
            "room.>".to_owned(),
        ];
        Tables {
            pattern: std::array::from_fn(|s| is_pattern(&names[s])),
            covers: std::array::from_fn(|s| std::array::from_fn(|t| covers(&names[s], &names[t]))),
            names,
        }
    })
}

/// Whether name `s` is a wildcard pattern.
pub fn pattern(s: usize) -> bool {
    tables().pattern[s]
}

/// Whether a subscription to name `s` reaches a broadcast on name `t`.
pub fn reaches(s: usize, t: usize) -> bool {
    tables().covers[s][t]
}
