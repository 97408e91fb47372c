//! Hand-made seed inputs: short op sequences that reach each feature at least once
//! (written into `fuzz/corpus/ops_vs_model/seed-*` by the replay test's `write_seeds`).

use super::ops::{MutationSel, Op, PayloadSel, PolicySel, TopicSel};

/// Hand-made seeds: (name, ops).
pub fn seeds() -> Vec<(&'static str, Vec<Op>)> {
    use Op::*;
    use TopicSel::*;
    let p = |len: u8| PayloadSel { len, fill: 0x5a };
    let chan = |slot: u8, capacity: u8, policy: PolicySel| RegisterChannel {
        slot,
        capacity,
        policy,
    };
    vec![
        (
            "basic",
            vec![
                Register { slot: 0 },
                chan(1, 7, PolicySel::DropNewest),
                Subscribe {
                    slot: 0,
                    topic: Str(0),
                },
                Subscribe {
                    slot: 1,
                    topic: Str(0),
                },
                Broadcast {
                    topic: Str(0),
                    payload: p(3),
                },
                BroadcastFrom {
                    slot: 0,
                    topic: Str(0),
                    payload: p(5),
                },
                Unsubscribe {
                    slot: 1,
                    topic: Str(0),
                },
                Broadcast {
                    topic: Resolved(0),
                    payload: p(0),
                },
                Unregister { slot: 0 },
                Broadcast {
                    topic: Owned(0),
                    payload: p(1),
                },
                Drain { slot: 1 },
                SubscriberCount { topic: Str(0) },
            ],
        ),
        (
            "idempotent",
            vec![
                Register { slot: 0 },
                Subscribe {
                    slot: 0,
                    topic: Str(2),
                },
                Subscribe {
                    slot: 0,
                    topic: Resolved(2),
                },
                Subscribe {
                    slot: 0,
                    topic: Owned(2),
                },
                SubscriberCount { topic: Str(2) },
                Broadcast {
                    topic: Str(2),
                    payload: p(2),
                },
                Unsubscribe {
                    slot: 0,
                    topic: Str(2),
                },
                Unsubscribe {
                    slot: 0,
                    topic: Str(2),
                },
                Broadcast {
                    topic: Str(2),
                    payload: p(2),
                },
            ],
        ),
        (
            "overflow-policies",
            vec![
                chan(0, 1, PolicySel::DropNewest),
                chan(1, 1, PolicySel::DropOldest),
                chan(2, 1, PolicySel::Disconnect),
                chan(3, 2, PolicySel::BlockZero),
                Subscribe {
                    slot: 0,
                    topic: Str(1),
                },
                Subscribe {
                    slot: 1,
                    topic: Str(1),
                },
                Subscribe {
                    slot: 2,
                    topic: Str(1),
                },
                Subscribe {
                    slot: 3,
                    topic: Str(1),
                },
                Broadcast {
                    topic: Str(1),
                    payload: p(1),
                },
                Broadcast {
                    topic: Str(1),
                    payload: p(2),
                },
                Broadcast {
                    topic: Str(1),
                    payload: p(3),
                },
                SubscriberCount { topic: Str(1) },
                Drain { slot: 0 },
                Drain { slot: 1 },
                Drain { slot: 2 },
                Broadcast {
                    topic: Str(1),
                    payload: p(4),
                },
                Subscribe {
                    slot: 2,
                    topic: Str(1),
                },
                Drain { slot: 3 },
            ],
        ),
        (
            "drop-channel",
            vec![
                chan(0, 7, PolicySel::DropOldest),
                Register { slot: 1 },
                Subscribe {
                    slot: 0,
                    topic: Str(3),
                },
                Subscribe {
                    slot: 1,
                    topic: Str(3),
                },
                Broadcast {
                    topic: Str(3),
                    payload: p(9),
                },
                DropChannel { slot: 0 },
                Broadcast {
                    topic: Str(3),
                    payload: p(9),
                },
                SubscriberCount { topic: Str(3) },
                chan(0, 7, PolicySel::DropNewest),
                Subscribe {
                    slot: 0,
                    topic: Str(3),
                },
                Broadcast {
                    topic: Str(3),
                    payload: p(9),
                },
            ],
        ),
        (
            "bad-input",
            vec![
                Subscribe {
                    slot: 0,
                    topic: Str(0),
                },
                Unregister { slot: 0 },
                Register { slot: 0 },
                Subscribe {
                    slot: 0,
                    topic: Empty,
                },
                Subscribe {
                    slot: 0,
                    topic: TooLong,
                },
                Unsubscribe {
                    slot: 0,
                    topic: Empty,
                },
                Broadcast {
                    topic: Empty,
                    payload: p(1),
                },
                Broadcast {
                    topic: TooLong,
                    payload: p(1),
                },
                SubscriberCount { topic: TooLong },
                Register { slot: 0 },
                chan(0, 7, PolicySel::DropNewest),
                chan(1, 0, PolicySel::DropNewest),
                Unsubscribe {
                    slot: 2,
                    topic: Str(0),
                },
            ],
        ),
        (
            "frames",
            vec![
                Register { slot: 0 },
                chan(1, 7, PolicySel::DropNewest),
                Subscribe {
                    slot: 0,
                    topic: Str(1),
                },
                Subscribe {
                    slot: 1,
                    topic: Str(1),
                },
                BroadcastFrame {
                    from: None,
                    topic: Str(1),
                    frame_topic: 1,
                    payload: p(4),
                },
                BroadcastFrame {
                    from: Some(0),
                    topic: Resolved(1),
                    frame_topic: 1,
                    payload: p(4),
                },
                BroadcastFrame {
                    from: None,
                    topic: Str(1),
                    frame_topic: 0,
                    payload: p(4),
                },
                BroadcastFrame {
                    from: None,
                    topic: Str(1),
                    frame_topic: 4,
                    payload: p(4),
                },
                BroadcastFrame {
                    from: None,
                    topic: Str(0),
                    frame_topic: 5,
                    payload: p(4),
                },
                BroadcastFailing {
                    from: None,
                    topic: Str(1),
                },
                BroadcastFailing {
                    from: None,
                    topic: Str(0),
                },
                BroadcastFailing {
                    from: Some(0),
                    topic: Str(1),
                },
            ],
        ),
        (
            "shutdown",
            vec![
                Register { slot: 0 },
                chan(1, 7, PolicySel::DropNewest),
                Subscribe {
                    slot: 0,
                    topic: Str(0),
                },
                Subscribe {
                    slot: 1,
                    topic: Str(0),
                },
                Broadcast {
                    topic: Str(0),
                    payload: p(2),
                },
                Shutdown { guard: 0 },
                Broadcast {
                    topic: Str(0),
                    payload: p(2),
                },
                Subscribe {
                    slot: 0,
                    topic: Str(1),
                },
                Register { slot: 2 },
                chan(2, 0, PolicySel::DropNewest),
                Unregister { slot: 0 },
                BroadcastFrame {
                    from: None,
                    topic: Str(0),
                    frame_topic: 0,
                    payload: p(1),
                },
                SubscriberCount { topic: Str(0) },
                Drain { slot: 1 },
                Shutdown { guard: 1 },
            ],
        ),
        (
            "apply",
            vec![
                Register { slot: 0 },
                chan(1, 7, PolicySel::DropNewest),
                Apply {
                    mutations: [
                        MutationSel::Subscribe { slot: 0, topic: 0 },
                        MutationSel::Subscribe { slot: 1, topic: 0 },
                        MutationSel::Subscribe { slot: 0, topic: 4 },
                    ],
                    count: 3,
                },
                Broadcast {
                    topic: Str(0),
                    payload: p(2),
                },
                Apply {
                    mutations: [
                        MutationSel::Unsubscribe { slot: 0, topic: 0 },
                        MutationSel::Unregister { slot: 1 },
                        MutationSel::Subscribe { slot: 2, topic: 1 },
                    ],
                    count: 3,
                },
                Broadcast {
                    topic: Str(0),
                    payload: p(2),
                },
                Apply {
                    mutations: [
                        MutationSel::Unregister { slot: 1 },
                        MutationSel::Unregister { slot: 0 },
                        MutationSel::Unregister { slot: 0 },
                    ],
                    count: 0,
                },
                Subscribe {
                    slot: 0,
                    topic: Foreign,
                },
                Broadcast {
                    topic: Foreign,
                    payload: p(1),
                },
                Shutdown { guard: 0 },
                Apply {
                    mutations: [
                        MutationSel::Unregister { slot: 0 },
                        MutationSel::Unregister { slot: 0 },
                        MutationSel::Unregister { slot: 0 },
                    ],
                    count: 0,
                },
            ],
        ),
        (
            "conflate",
            vec![
                chan(0, 2, PolicySel::Conflate),
                chan(1, 1, PolicySel::Conflate),
                Subscribe {
                    slot: 0,
                    topic: Str(0),
                },
                Subscribe {
                    slot: 0,
                    topic: Str(1),
                },
                Subscribe {
                    slot: 0,
                    topic: Str(2),
                },
                Subscribe {
                    slot: 1,
                    topic: Str(0),
                },
                Subscribe {
                    slot: 1,
                    topic: Str(1),
                },
                Broadcast {
                    topic: Str(0),
                    payload: p(1),
                },
                Broadcast {
                    topic: Str(1),
                    payload: p(2),
                },
                Broadcast {
                    topic: Str(0),
                    payload: p(3),
                },
                Broadcast {
                    topic: Str(2),
                    payload: p(4),
                },
                BroadcastFrame {
                    from: None,
                    topic: Str(1),
                    frame_topic: 1,
                    payload: p(5),
                },
                Drain { slot: 0 },
                Broadcast {
                    topic: Str(2),
                    payload: p(6),
                },
                DropChannel { slot: 1 },
                Broadcast {
                    topic: Str(0),
                    payload: p(7),
                },
                Drain { slot: 0 },
                Shutdown { guard: 0 },
                Drain { slot: 0 },
            ],
        ),
        (
            "new-id",
            vec![
                Register { slot: 0 },
                Subscribe {
                    slot: 0,
                    topic: Str(0),
                },
                NewId { slot: 0 },
                Broadcast {
                    topic: Str(0),
                    payload: p(1),
                },
                Register { slot: 0 },
                Subscribe {
                    slot: 0,
                    topic: Str(0),
                },
                BroadcastFrom {
                    slot: 0,
                    topic: Str(0),
                    payload: p(1),
                },
                Unregister { slot: 0 },
                Register { slot: 0 },
                Broadcast {
                    topic: Str(0),
                    payload: p(1),
                },
            ],
        ),
    ]
}
