//! [`stdout_of`]: runs a command the test needs (a script, `rabbitmqctl`, a peer in another
//! language) and returns what it printed, failing loudly when it cannot run or fails.

use std::process::Command;

/// Runs `command` to its end, passes its standard error on (so that the test's output shows
/// what the script said), and returns its standard output, trimmed.
///
/// # Panics
/// When the command cannot start or exits with an error; the message names the command and
/// holds its standard error.
///
/// ```
/// let mut echo = std::process::Command::new("echo");
/// echo.arg("hello");
/// assert_eq!(test_support::stdout_of(&mut echo), "hello");
/// ```
pub fn stdout_of(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} cannot run: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprint!("{stderr}");
    assert!(
        output.status.success(),
        "{command:?} failed ({}): {stderr}",
        output.status
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}
