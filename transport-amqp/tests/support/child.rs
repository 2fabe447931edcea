//! Consumers in child processes, for tests that kill or crash one: the test binary starts
//! itself again, running only its `child_consumer` test with a procedure's name in an
//! environment variable; that test serves the procedure and says `CONSUMING`.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use rpc_core::Registry;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use super::{runtime, serve};

/// How long a child may take to say what the test waits for.
const SAY_WITHIN: Duration = Duration::from_secs(20);

/// The body of a test binary's `child_consumer` test: when `variable` is set (by
/// [`ChildConsumer::start`]), serves what `register` puts in a registry under that name, says
/// `CONSUMING`, and waits to be killed (a minute at most, should the parent have died). Does
/// nothing when `variable` is not set, as in the ordinary test run.
pub fn serve_as_child(variable: &str, register: impl FnOnce(&mut Registry, String)) {
    let Ok(name) = std::env::var(variable) else {
        return;
    };
    runtime().block_on(async {
        let mut registry = Registry::new();
        register(&mut registry, name);
        let _server = serve(registry).await;
        println!("CONSUMING");
        let _ = std::io::stdout().flush();
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

/// A consumer in a child process (killed when dropped), and what it prints.
pub struct ChildConsumer {
    /// The process.
    pub process: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ChildConsumer {
    /// Starts this test binary's `child_consumer` test with `variable` set to `name`.
    pub fn start(variable: &str, name: &str) -> Self {
        let mut process = tokio::process::Command::new(std::env::current_exe().expect("this test"))
            .args([
                "child_consumer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(variable, name)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("a child consumer");
        let lines = BufReader::new(process.stdout.take().expect("its stdout")).lines();
        Self { process, lines }
    }

    /// Whether the child printed a line holding `wanted` within 20 s (false if it died).
    pub async fn said(&mut self, wanted: &str) -> bool {
        tokio::time::timeout(SAY_WITHIN, async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                if line.contains(wanted) {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false)
    }

    /// The process, its output read on in the background from now on so that the child
    /// never blocks on a full pipe.
    pub fn into_process(self) -> Child {
        let mut lines = self.lines;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.process
    }
}
