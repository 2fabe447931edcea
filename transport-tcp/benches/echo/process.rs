//! A server end in a process of its own: this binary re-run with `ECHO_SERVE` set.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::server::Peer;
use crate::Flavor;

/// A child process serving one peer; it stops when its standard input closes.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `peer` on a `flavor` runtime, with the environment `env` added.
    pub fn start(peer: Peer, flavor: Flavor, env: &[(&str, &Path)]) -> Self {
        let exe = std::env::current_exe().expect("this binary");
        let mut command = Command::new(exe);
        command
            .env("ECHO_SERVE", peer.name())
            .env("ECHO_RUNTIME", flavor.arg());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("a server process");
        let mut port = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut port).expect("port");
        let port: u16 = port.trim().parse().expect("a port");
        let addr = ([127, 0, 0, 1], port).into();
        Self { child, addr }
    }

    /// The CPU time it has used so far.
    pub fn cpu(&self) -> std::time::Duration {
        test_support::procfs::process_cpu(self.child.id()).unwrap_or_default()
    }

    /// Closes its standard input and waits for it to exit.
    pub fn stop(mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = self.child.wait();
    }
}
