//! A throwaway `redis-server` for the bridge tests and bench: started on a free loopback
//! port with no persistence, killed on drop. Panics loudly if `redis-server` is not
//! installed (`.ci/run` installs it: `apt-get install -y redis-server`).
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "loopback_port.rs"]
#[allow(clippy::duplicate_mod)] // a test may include both harnesses; each has its own range
mod loopback_port;

/// A loopback port nobody listens on now, never handed out before in this process.
pub fn free_port() -> u16 {
    loopback_port::free_port_in(loopback_port::REDIS)
}

pub struct RedisServer {
    pub port: u16,
    /// The server's output, shown when it does not come up.
    log: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it accepts connections. A server
    /// that does not come up is tried again on another port, twice.
    pub fn start() -> Self {
        let mut failures = Vec::new();
        for _ in 0..3 {
            let mut server = Self::unstarted(free_port());
            match server.try_spawn() {
                Ok(()) => return server,
                Err(why) => {
                    eprintln!("a redis-server did not start, trying another port: {why}");
                    failures.push(why);
                }
            }
        }
        panic!("redis-server did not start in 3 attempts:\n{failures:#?}");
    }

    /// Starts a server on `port` and waits until it accepts connections.
    pub fn start_on(port: u16) -> Self {
        let mut server = Self::unstarted(port);
        server.spawn();
        server
    }

    fn unstarted(port: u16) -> Self {
        let log = std::env::temp_dir().join(format!("fanout-redis-{port}.log"));
        Self {
            port,
            log,
            child: None,
        }
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        url_for(self.port)
    }

    /// Kills the server (as a crash would) and waits for the process to end.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts a fresh one on the same port (no state survives).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        if let Err(why) = self.try_spawn() {
            panic!("{why}");
        }
    }

    /// Starts the server and waits until it accepts connections. The error carries
    /// its output if it exits first or does not listen within 30 s.
    fn try_spawn(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(&self.log).expect("create a redis-server log file");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().display().to_string()])
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): the bridge tests need it; \
                     install it with `apt-get install -y redis-server` (.ci/run does)"
                )
            });
        let child = self.child.insert(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || start.elapsed() > Duration::from_secs(30) {
                let how = exited.map_or("did not listen within 30 s".to_owned(), |status| {
                    format!("exited ({status})")
                });
                self.kill();
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(format!(
                    "redis-server on port {} {how}; its output:\n{log}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

pub fn url_for(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/")
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}
