//! `fanout::transport::decode_envelope` on arbitrary bytes. The checks live in
//! `targets_common/envelope_decode.rs`, shared with the stable replay test.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../targets_common/envelope_decode.rs"]
mod envelope_decode;
#[path = "../targets_common/thread_alloc_counter.rs"]
mod thread_alloc_counter;

use thread_alloc_counter::allocated;

fuzz_target!(|data: &[u8]| {
    envelope_decode::run(data, allocated);
});
