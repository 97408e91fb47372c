//! Throwaway `nats-server`s for the NATS bridge tests and bench: a cluster of servers
//! on free loopback ports, routed to each other, each killed (SIGKILL) on drop. Panics
//! loudly if `nats-server` is not installed (`.ci/run` installs it:
//! `apt-get install -y nats-server`).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nobody listens on now (bind port 0, read it, let it go).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().unwrap().port()
}

/// One server of a cluster.
pub struct NatsServer {
    pub port: u16,
    pub cluster_port: u16,
    pub monitor_port: u16,
    config: PathBuf,
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
        let ports: Vec<(u16, u16, u16)> = (0..n)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, c, _)| format!("\"nats-route://127.0.0.1:{c}\""))
            .collect();
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
                     cluster {{\n  name: fanout\n  listen: \"127.0.0.1:{cluster_port}\"\n  \
                     routes: [{}]\n}}\n{extra}\n",
                    others.join(", ")
                );
                std::fs::write(&config, text).expect("write a nats-server config");
                NatsServer {
                    port,
                    cluster_port,
                    monitor_port,
                    config,
                    child: None,
                }
            })
            .collect();
        for server in &mut servers {
            server.spawn();
        }
        let cluster = Self { servers };
        cluster.wait_routed();
        cluster
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
    pub fn wait_routed(&self) {
        let up: Vec<&NatsServer> = self.servers.iter().filter(|s| s.child.is_some()).collect();
        let want = up.len() - 1;
        let start = Instant::now();
        for server in &up {
            while server.routes() != Some(want) {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "nats-server on {} has {:?} routes, not {want}",
                    server.port,
                    server.routes()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Kills server `i` with SIGKILL, as a crash would.
    pub fn kill(&mut self, i: usize) {
        self.servers[i].kill();
    }

    /// Starts server `i` again on the same ports.
    pub fn restart(&mut self, i: usize) {
        self.servers[i].kill();
        self.servers[i].spawn();
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
    fn spawn(&mut self) {
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
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
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nats-server did not listen on port {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
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
