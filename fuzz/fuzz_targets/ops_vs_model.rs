//! Operation sequences against `PubSub<[u8]>` and a reference model. The logic lives in
//! `targets_common/ops_vs_model.rs`, shared with the stable replay test.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../targets_common/ops_vs_model.rs"]
mod ops_vs_model;

fuzz_target!(|data: &[u8]| {
    ops_vs_model::run(data);
});
