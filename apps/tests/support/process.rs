//! [`Logged`]: a child process whose log (its stderr) is kept line by line as it runs, what
//! the consumer and the web producer of the tests are built on.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child process and the lines it has logged so far; killed when dropped.
pub struct Logged {
    pub child: Child,
    /// What the process is in messages and in the echoed log (`consumer`, `producer`).
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

impl Logged {
    /// Spawns `command` with its stderr piped, each line kept and echoed to the test's
    /// stderr as `[name] line`, except the lines `quiet` says to keep to the log only.
    pub fn spawn(command: &mut Command, name: &'static str, quiet: fn(&str) -> bool) -> Logged {
        let mut child = command
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start the {name} binary: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("its stderr");
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !quiet(&line) {
                    eprintln!("[{name}] {line}");
                }
                lines.lock().unwrap().push(line);
            }
        });
        Logged { child, name, log }
    }

    /// Waits for a log line containing `needle` and returns it; panics with the log on timeout
    /// or if the process exits first.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before logging {needle:?}: {:#?}",
                    self.name,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the {} log: {:#?}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for a log line containing `needle` and returns the address its `addr=` field
    /// gives (`127.0.0.1:port`); panics as [`Logged::wait_for`] does, or if there is none.
    pub fn wait_for_addr(&mut self, needle: &str, timeout: Duration) -> String {
        let line = self.wait_for(needle, timeout);
        line.split("addr=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string()
    }

    /// Every line logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The process's memory `field` from /proc (`VmRSS` now, `VmHWM` the peak so far), in
    /// bytes; `None` once it has exited.
    pub fn memory(&self, field: &str) -> Option<u64> {
        test_support::procfs::memory(self.child.id(), field)
    }

    /// Sends `signal` (e.g. "INT", "KILL", "HUP") to the process.
    pub fn signal(&self, signal: &str) {
        super::signal(self.child.id(), signal);
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the process") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit: {:#?}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
