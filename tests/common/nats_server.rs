//! Throwaway `nats-server`s for the NATS bridge tests and bench: a cluster of servers
//! on free loopback ports, routed to each other, each killed (SIGKILL) on drop. Panics
//! loudly if `nats-server` is not installed (`.ci/run` installs it:
//! `apt-get install -y nats-server`).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "loopback_port.rs"]
#[allow(clippy::duplicate_mod)] // a test may include both harnesses; each has its own range
mod loopback_port;

/// A loopback port nobody listens on now, never handed out before in this process.
pub fn free_port() -> u16 {
    loopback_port::free_port_in(loopback_port::NATS)
}

/// How many times a cluster is started afresh, on new ports, when a server exits at
/// start-up or the routes do not form.
const ATTEMPTS: usize = 3;

/// One server of a cluster.
pub struct NatsServer {
    pub port: u16,
    pub cluster_port: u16,
    pub monitor_port: u16,
    config: PathBuf,
    /// The server's standard error, shown when it does not come up.
    log: PathBuf,
    child: Option<Child>,
}

/// `n` servers routed to each other.
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `n` servers and waits until every one is routed to every other.
    pub fn start(n: usize) -> Self {
        Self::start_with(n, "")
    }

    /// As [`start`](Self::start), with `extra` appended to every server's config file
    /// (for example `max_pending: 65536`).
    pub fn start_with(n: usize, extra: &str) -> Self {
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            match Self::try_start(n, extra) {
                Ok(cluster) => return cluster,
                Err(why) => {
                    eprintln!("a nats cluster did not start, trying fresh ports: {why}");
                    failures.push(why);
                }
            }
        }
        panic!("a nats cluster of {n} did not start in {ATTEMPTS} attempts:\n{failures:#?}");
    }

    /// One attempt at [`start_with`](Self::start_with). The servers are dropped
    /// (killed) if any of them does not come up or the routes do not form.
    fn try_start(n: usize, extra: &str) -> Result<Self, String> {
        let ports: Vec<(u16, u16, u16)> = (0..n)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, c, _)| format!("\"nats-route://127.0.0.1:{c}\""))
            .collect();
        // A name of its own, so a route that reaches another test's cluster is refused.
        let name = format!("fanout_{}", ports[0].0);
        let dir = std::env::temp_dir();
        let mut servers: Vec<NatsServer> = ports
            .iter()
            .enumerate()
            .map(|(i, &(port, cluster_port, monitor_port))| {
                let config = dir.join(format!("fanout-nats-{port}.conf"));
                let others: Vec<&str> = routes
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, r)| r.as_str())
                    .collect();
                let text = format!(
                    "server_name: s{i}_{port}\nlisten: \"127.0.0.1:{port}\"\n\
                     http: \"127.0.0.1:{monitor_port}\"\n\
                     cluster {{\n  name: {name}\n  listen: \"127.0.0.1:{cluster_port}\"\n  \
                     routes: [{}]\n}}\n{extra}\n",
                    others.join(", ")
                );
                std::fs::write(&config, text).expect("write a nats-server config");
                NatsServer {
                    port,
                    cluster_port,
                    monitor_port,
                    log: dir.join(format!("fanout-nats-{port}.log")),
                    config,
                    child: None,
                }
            })
            .collect();
        for server in &mut servers {
            server.try_spawn()?;
        }
        let mut cluster = Self { servers };
        cluster.try_wait_routed()?;
        Ok(cluster)
    }

    /// Every server's client URL, comma-separated.
    pub fn url(&self) -> String {
        let urls: Vec<String> = (0..self.servers.len()).map(|i| self.url_of(i)).collect();
        urls.join(",")
    }

    /// Server `i`'s client URL.
    pub fn url_of(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.servers[i].port)
    }

    /// Waits until every running server has a route to every other running one.
    pub fn wait_routed(&mut self) {
        if let Err(why) = self.try_wait_routed() {
            panic!("{why}");
        }
    }

    /// As [`wait_routed`](Self::wait_routed); the error names the server that exited
    /// or stayed short of routes for 30 s, with its log.
    fn try_wait_routed(&mut self) -> Result<(), String> {
        let want = self.servers.iter().filter(|s| s.is_up()).count() - 1;
        let start = Instant::now();
        loop {
            let mut short = None;
            for server in self.servers.iter_mut().filter(|s| s.is_up()) {
                if let Some(status) = server.exited() {
                    return Err(format!(
                        "nats-server on {} exited ({status}); its log:\n{}",
                        server.port,
                        server.log_text()
                    ));
                }
                if short.is_none() && server.routes() != Some(want) {
                    short = Some(&*server);
                }
            }
            let Some(server) = short else { return Ok(()) };
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!(
                    "nats-server on {} has {:?} routes, not {want}, after 30 s; \
                     its /routez: {}\nits log:\n{}",
                    server.port,
                    server.routes(),
                    http_get(server.monitor_port, "/routez").unwrap_or_default(),
                    server.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills server `i` with SIGKILL, as a crash would.
    pub fn kill(&mut self, i: usize) {
        self.servers[i].kill();
    }

    /// Starts server `i` again on the same ports.
    pub fn restart(&mut self, i: usize) {
        self.servers[i].kill();
        if let Err(why) = self.servers[i].try_spawn() {
            panic!("{why}");
        }
    }

    /// How many client connections server `i` has now.
    pub fn connections(&self, i: usize) -> Option<usize> {
        let body = http_get(self.servers[i].monitor_port, "/connz")?;
        json_number(&body, "\"num_connections\"")
    }
}

impl NatsCluster {
    /// Bytes server `i` has read from and written to its connections, clients and
    /// routes (its monitoring endpoint's `in_bytes`, `out_bytes`).
    pub fn bytes(&self, i: usize) -> Option<(u64, u64)> {
        let body = http_get(self.servers[i].monitor_port, "/varz")?;
        let read = json_number(&body, "\"in_bytes\"")?;
        let written = json_number(&body, "\"out_bytes\"")?;
        Some((read as u64, written as u64))
    }

    /// Messages server `i` has sent to the client connection named `name` (from its
    /// monitoring endpoint), if it has one.
    pub fn out_msgs(&self, i: usize, name: &str) -> Option<u64> {
        let body = http_get(self.servers[i].monitor_port, "/connz")?;
        let at = body.find(&format!("\"name\": \"{name}\""))?;
        let before = &body[..at];
        let field = before.rfind("\"out_msgs\"")?;
        json_number(&before[field..], "\"out_msgs\"").map(|n| n as u64)
    }
}

impl NatsServer {
    /// Starts the server and waits until it accepts connections. The error carries
    /// its log if it exits first or does not listen within 30 s.
    fn try_spawn(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(&self.log).expect("create a nats-server log file");
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start nats-server ({e}): the NATS bridge tests need it; \
                     install it with `apt-get install -y nats-server` (.ci/run does)"
                )
            });
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self.exited();
            if exited.is_some() || start.elapsed() > Duration::from_secs(30) {
                let how = exited.map_or("did not listen within 30 s".to_owned(), |status| {
                    format!("exited ({status})")
                });
                self.kill();
                return Err(format!(
                    "nats-server on port {} {how}; its log:\n{}",
                    self.port,
                    self.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// The exit status, if the process has ended.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// Routes this server has, from its monitoring endpoint.
    fn routes(&self) -> Option<usize> {
        let body = http_get(self.monitor_port, "/routez")?;
        json_number(&body, "\"num_routes\"")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.config);
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The body of `GET path` on the loopback port, or `None`.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
}

/// The number after `key:` in a JSON body.
fn json_number(body: &str, key: &str) -> Option<usize> {
    let rest = &body[body.find(key)? + key.len()..];
    let digits: String = rest
        .trim_start_matches([':', ' '])
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}
