//! Running the real binaries as processes: a consumer whose log is watched, and the producer.

#![allow(dead_code)]

mod process;
pub mod web;

use std::io::{BufRead, BufReader};
use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use process::Logged;

/// A consumer process and the lines it has logged so far (the [`Logged`] it derefs to).
pub struct Consumer {
    process: Logged,
    pub port: u16,
}

impl Consumer {
    /// Starts `consumer` with `args` (plus `--port 0` for TCP) and waits until it serves.
    pub fn start(args: &[&str]) -> Consumer {
        Consumer::start_on(args, 0)
    }

    /// Starts `consumer` with `args` (plus `--port <port>` for TCP; 0 picks a free port) and
    /// waits until it serves: the way to restart a TCP consumer where its producers expect it.
    pub fn start_on(args: &[&str], port: u16) -> Consumer {
        Consumer::start_logging(args, port, "info")
    }

    /// [`Consumer::start_on`] with the log filtered by `filter` (`RUST_LOG`), which must keep
    /// the info line that says it serves.
    pub fn start_logging(args: &[&str], port: u16, filter: &str) -> Consumer {
        Consumer::start_with_env(args, port, filter, &[])
    }

    /// [`Consumer::start_logging`] with `env` (name, value) set in its environment.
    pub fn start_with_env(
        args: &[&str],
        port: u16,
        filter: &str,
        env: &[(&str, &str)],
    ) -> Consumer {
        let tcp = !args.contains(&"amqp");
        let mut command = Command::new(env!("CARGO_BIN_EXE_consumer"));
        command.args(args).env("RUST_LOG", filter);
        command.envs(env.iter().copied());
        if tcp {
            command.args(["--port", &port.to_string()]);
        }
        command.stdout(Stdio::null());
        let mut consumer = Consumer {
            process: Logged::spawn(&mut command, "consumer", |_| false),
            port: 0,
        };
        let ready = if tcp {
            "consumer listening"
        } else {
            "AMQP consumer ready"
        };
        if tcp {
            let addr = consumer.wait_for_addr(ready, Duration::from_secs(60));
            consumer.port = addr
                .rsplit(':')
                .next()
                .and_then(|port| port.parse().ok())
                .unwrap_or_else(|| panic!("no port in {addr:?}"));
        } else {
            consumer.wait_for(ready, Duration::from_secs(60));
        }
        consumer
    }
}

impl Deref for Consumer {
    type Target = Logged;

    fn deref(&self) -> &Logged {
        &self.process
    }
}

impl DerefMut for Consumer {
    fn deref_mut(&mut self) -> &mut Logged {
        &mut self.process
    }
}

/// Sends `signal` (e.g. "INT", "KILL", "HUP") to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} failed");
}

/// Runs a binary of this package to completion and returns its output (stderr echoed).
pub fn run(binary: &str, args: &[String]) -> Output {
    let output = Command::new(binary)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// The producer's summary line, e.g. `summary: 50 tasks, 50 ok, 0 failed in ...`.
pub fn summary(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(stdout.contains("summary:"), "no summary in {stdout}");
    stdout
}

/// The ids of the tasks whose results the producer logged, in order.
pub fn result_ids(output: &Output) -> Vec<u64> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|line| line.split("result #").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The ids of the tasks the producer logged as failed, in order.
pub fn failed_ids(output: &Output) -> Vec<u64> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|line| line.split("failed #").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Checks that tasks 1..=count were each answered exactly once.
pub fn assert_each_answered_once(output: &Output, count: u64) {
    let mut ids = result_ids(output);
    ids.sort_unstable();
    let expected: Vec<u64> = (1..=count).collect();
    assert_eq!(ids, expected, "every task answered exactly once");
    let summary = summary(output);
    assert!(
        summary.contains(&format!("summary: {count} tasks, {count} ok, 0 failed")),
        "{summary}"
    );
    assert!(output.status.success(), "producer failed: {summary}");
}

/// A producer process whose log is read as it runs, for tests that act during a run.
pub struct Producer {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

/// What a producer run left: its log lines, its stdout (the summary) and its exit status.
pub struct Finished {
    pub lines: Vec<String>,
    pub stdout: String,
    pub status: std::process::ExitStatus,
}

impl Producer {
    /// Starts `producer` with `args`; its log lines are collected as they come.
    pub fn spawn(args: &[String]) -> Producer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_producer"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the producer binary");
        let stderr = child.stderr.take().expect("producer stderr");
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[producer] {line}");
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Producer {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Takes in the lines logged so far, so that the next wait counts only later results.
    pub fn drain(&mut self) {
        self.seen.extend(self.lines.try_iter());
    }

    /// Waits until `count` more results (`result #`) are logged; panics after `timeout`.
    pub fn wait_for_results(&mut self, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut results = 0;
        while results < count {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("{results}/{count} results, then {e}"));
            results += usize::from(line.contains("result #"));
            self.seen.push(line);
        }
    }

    /// Sends SIGINT (Ctrl-C) to the producer.
    pub fn interrupt(&self) {
        signal(self.child.id(), "INT");
    }

    /// Waits for the producer to exit and returns what it logged and printed.
    pub fn finish(mut self) -> Finished {
        let status = self.child.wait().expect("the producer exits");
        self.seen.extend(self.lines.iter());
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            std::io::Read::read_to_string(&mut out, &mut stdout).expect("read the summary");
        }
        Finished {
            lines: std::mem::take(&mut self.seen),
            stdout,
            status,
        }
    }
}

impl Finished {
    /// The task ids that follow `marker` (`task added: #`, `result #`, `failed #`), sorted.
    pub fn ids(&self, marker: &str) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .lines
            .iter()
            .filter_map(|line| line.split(marker).nth(1))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect();
        ids.sort_unstable();
        ids
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
