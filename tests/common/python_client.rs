//! Whether `python3` has a client library a cross-language test needs. Without it such a
//! test says so on stderr and passes (`cargo test` on a fresh machine has only the Rust
//! toolchain), unless `FANOUT_REQUIRE_PYTHON_CLIENTS` is set — `.ci/run` sets it once it
//! has installed the clients — where a missing one fails the test instead.

use std::process::{Command, Stdio};

/// Whether `python3` can `import module`; `pip` names its package, for the messages.
/// Prints the skip on stderr when it cannot; panics instead when clients are required.
pub fn python_can_import(module: &str, pip: &str) -> bool {
    let found = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found || std::env::var_os("FANOUT_REQUIRE_PYTHON_CLIENTS").is_none(),
        "FANOUT_REQUIRE_PYTHON_CLIENTS is set but python3 cannot import {module} \
         (`pip install {pip}`)"
    );
    if !found {
        eprintln!("skipped: python3 with {module} is not installed (pip install {pip})");
    }
    found
}
