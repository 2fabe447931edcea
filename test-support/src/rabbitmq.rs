//! The local RabbitMQ broker through `rabbitmqctl`: commands, their JSON output, and
//! [`BrokerStopped`], which stops the broker's application and starts it again on drop.
//!
//! `rabbitmqctl` must run where the broker runs, as a user that can read its Erlang cookie
//! (root, as `scripts/start_rabbitmq.sh` sets it up); a test that cannot run it fails loudly.

use std::process::{Command, Output};

/// Runs `rabbitmqctl args...` (from `PATH`, else `/usr/sbin`).
fn run(args: &[&str]) -> Output {
    Command::new("rabbitmqctl")
        .args(args)
        .output()
        .or_else(|_| Command::new("/usr/sbin/rabbitmqctl").args(args).output())
        .unwrap_or_else(|e| {
            panic!("rabbitmqctl {args:?} (run as root beside the broker, scripts/start_rabbitmq.sh): {e}")
        })
}

/// Runs `rabbitmqctl args...` and returns its standard output.
///
/// # Panics
/// When `rabbitmqctl` cannot run or exits with an error (its output is in the message).
pub fn rabbitmqctl(args: &[&str]) -> String {
    let output = run(args);
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `rabbitmqctl args... --formatter json -q` (a `list_*` command) and returns its rows,
/// objects keyed by column.
///
/// # Panics
/// As [`rabbitmqctl`], and when the output is not a JSON array.
pub fn rabbitmqctl_json(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = args.to_vec();
    all.extend(["--formatter", "json", "-q"]);
    let stdout = rabbitmqctl(&all);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("rabbitmqctl {args:?} printed no JSON array ({e}): {stdout}"))
}

/// The local broker's application stopped (`rabbitmqctl stop_app`) while this guard lives;
/// dropping it starts it again (`start_app`), whether the test passed or panicked, so that
/// no later test finds the broker down.
///
/// ```no_run
/// let stopped = test_support::BrokerStopped::stop_app();
/// std::thread::sleep(std::time::Duration::from_secs(2));
/// drop(stopped); // start_app
/// ```
#[derive(Debug)]
#[must_use = "the broker starts again as soon as the guard is dropped"]
pub struct BrokerStopped(());

impl BrokerStopped {
    /// Stops the broker's application (the Erlang node keeps running).
    ///
    /// # Panics
    /// When `rabbitmqctl stop_app` fails.
    pub fn stop_app() -> Self {
        // The guard first: should stop_app fail half-way, start_app still runs.
        let guard = Self(());
        rabbitmqctl(&["stop_app"]);
        guard
    }
}

impl Drop for BrokerStopped {
    fn drop(&mut self) {
        let output = run(&["start_app"]);
        if !output.status.success() {
            let message = format!(
                "rabbitmqctl start_app failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            // Panicking while already panicking aborts: only say it then.
            if std::thread::panicking() {
                eprintln!("{message}");
            } else {
                panic!("{message}");
            }
        }
    }
}
