//! The producer as a web service: started with `--listen 127.0.0.1:0`, its address read from
//! its log; and what the HTTP tests check with: Prometheus text parsed, Fibonacci numbers
//! computed independently.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::process::{Command, Stdio};
use std::time::Duration;

use num_bigint::BigUint;

use super::Logged;

/// A producer serving HTTP, and the lines it has logged so far (the [`Logged`] it derefs to).
pub struct WebProducer {
    process: Logged,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl WebProducer {
    /// Starts `producer --listen 127.0.0.1:0` plus `args`, and waits until it listens.
    pub fn start(args: &[&str]) -> WebProducer {
        WebProducer::start_with_env(args, "info", &[])
    }

    /// [`WebProducer::start`] logging with `filter` (`RUST_LOG`, which must keep the info line
    /// that says it listens) and with `env` (name, value) set in its environment.
    pub fn start_with_env(args: &[&str], filter: &str, env: &[(&str, &str)]) -> WebProducer {
        let mut command = Command::new(env!("CARGO_BIN_EXE_producer"));
        command
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", filter)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        // Each call's own line would drown the test's output.
        let process = Logged::spawn(&mut command, "producer", |line| line.contains(" result #"));
        let mut producer = WebProducer {
            process,
            url: String::new(),
        };
        let addr = producer.wait_for_addr("HTTP listening", Duration::from_secs(30));
        producer.url = format!("http://{addr}");
        producer
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Deref for WebProducer {
    type Target = Logged;

    fn deref(&self) -> &Logged {
        &self.process
    }
}

impl DerefMut for WebProducer {
    fn deref_mut(&mut self) -> &mut Logged {
        &mut self.process
    }
}

/// F(0..=max) by plain addition, independent of the consumers' fast doubling.
pub fn fibonacci_table(max: usize) -> Vec<BigUint> {
    let mut table = vec![BigUint::from(0u32), BigUint::from(1u32)];
    while table.len() <= max {
        let next = &table[table.len() - 1] + &table[table.len() - 2];
        table.push(next);
    }
    table.truncate(max + 1);
    table
}

/// One sample of a Prometheus text exposition: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text format into samples by metric name; panics on a line that is
/// not a comment, a blank or `name{labels} value`.
pub fn parse_prometheus(text: &str) -> BTreeMap<String, Vec<Sample>> {
    let mut metrics: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                let mut labels = BTreeMap::new();
                // Label values here hold no `",` sequence: split on it.
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (key, value) = pair
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad label {pair:?} in {line:?}"));
                    labels.insert(key.to_string(), value.trim_end_matches('"').to_string());
                }
                (name, labels)
            }
        };
        metrics
            .entry(name.to_string())
            .or_default()
            .push(Sample { labels, value });
    }
    metrics
}

/// The sum of `name`'s samples whose labels include every pair of `filter`.
pub fn sum(metrics: &BTreeMap<String, Vec<Sample>>, name: &str, filter: &[(&str, &str)]) -> f64 {
    metrics
        .get(name)
        .map(|samples| {
            samples
                .iter()
                .filter(|s| {
                    filter
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
                })
                .map(|s| s.value)
                .sum()
        })
        .unwrap_or(0.0)
}
