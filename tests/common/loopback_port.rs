//! Loopback ports for the throwaway servers the tests start.
//!
//! Binding port 0 and letting it go hands out a port from the kernel's ephemeral range
//! (32768–60999 on Linux). Until the server binds it, that port is still in the pool
//! the kernel draws from for every outgoing connection, and the tests open many (each
//! client of each server), so now and then the server finds its port taken and exits.
//! The ports here come from below that range, where no outgoing connection ever gets
//! a local port, and from a process-wide counter, so two tests running side by side
//! never get the same one.
//!
//! Each server harness includes this file as a module of its own (a test may include
//! both), so each takes its own part of the range: a counter per harness, and no port
//! handed out by both.
#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Ports for `redis-server`s: 20000–25999, below the ephemeral range.
pub const REDIS: (u32, u32) = (20_000, 6_000);
/// Ports for `nats-server`s: 26000–31999.
pub const NATS: (u32, u32) = (26_000, 6_000);

/// A loopback port in `(first, span)` nobody listens on now, never handed out before by
/// this harness in this process.
pub fn free_port_in((first, span): (u32, u32)) -> u16 {
    // Processes started side by side (two test binaries, a bench and a test) begin at
    // different places in the span, so they rarely meet; the bind check below catches
    // the rest.
    static START: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = *START.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |t| t.subsec_nanos());
        (std::process::id().wrapping_mul(7_919) ^ nanos) % span
    });
    for _ in 0..span {
        let port = first + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    panic!("no free loopback port in {first}..{}", first + span);
}
