//! What the kernel says about a process, from `/proc`: its CPU time, one thread's CPU time,
//! its memory. Linux only; each reader returns `None` once the process has exited.

use std::path::Path;
use std::time::Duration;

/// The kernel's clock ticks per second for `/proc` CPU times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

/// The user plus system CPU time in the `stat` file at `path` (a process's or a thread's).
fn stat_cpu(path: &Path) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // After the command's closing parenthesis (the command may hold spaces and parentheses):
    // state is field 3, utime 14 and stime 15, so 11 and 12 counted from the state.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// The CPU time (user and system, every thread) process `pid` has used so far.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    stat_cpu(Path::new(&format!("/proc/{pid}/stat")))
}

/// The CPU time (user and system) the thread named `name` of process `pid` has used so far;
/// `None` when no thread has that name.
pub fn thread_cpu(pid: u32, name: &str) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    tasks.flatten().find_map(|task| {
        let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
        if comm.trim() != name {
            return None;
        }
        stat_cpu(&task.path().join("stat"))
    })
}

/// The memory `field` of process `pid` from `/proc/<pid>/status` (`VmRSS` now, `VmHWM` the
/// peak so far), in bytes.
pub fn memory(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB")?.trim().parse().ok())?;
    Some(kib * 1024)
}

/// The resident memory of process `pid` now (`VmRSS`), in bytes.
pub fn resident_memory(pid: u32) -> Option<u64> {
    memory(pid, "VmRSS")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spins until `used()` reports `amount` of CPU time; false if 30 s of wall time pass
    /// first (the machine may be busy: the test asserts what the kernel says, not how soon).
    fn spin_until(amount: Duration, used: impl Fn() -> Option<Duration>) -> bool {
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_secs(30) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            if used().is_some_and(|cpu| cpu >= amount) {
                return true;
            }
        }
        false
    }

    #[test]
    fn this_process_is_seen() {
        let pid = std::process::id();
        let before = process_cpu(pid).expect("our own stat");
        assert!(spin_until(before + Duration::from_millis(200), || {
            process_cpu(pid)
        }));
        let resident = resident_memory(pid).expect("our VmRSS");
        assert!(resident > 1 << 20);
        // The peak read after the resident size: other tests' threads in this process may grow
        // it in between, and the peak only grows.
        assert!(memory(pid, "VmHWM") >= Some(resident));
        assert_eq!(memory(pid, "NoSuchField"), None);
    }

    #[test]
    fn a_named_thread_is_found() {
        let pid = std::process::id();
        let spinner = std::thread::Builder::new()
            .name("ts-spinner".into())
            .spawn(move || spin_until(Duration::from_millis(100), || thread_cpu(pid, "ts-spinner")))
            .expect("a thread");
        assert!(
            spinner.join().expect("the thread"),
            "the thread's CPU time never grew"
        );
        assert_eq!(thread_cpu(pid, "no-such-thread"), None);
    }

    #[test]
    fn a_gone_process_has_nothing() {
        // Pids are at most 2^22 on Linux.
        assert_eq!(process_cpu(u32::MAX), None);
        assert_eq!(resident_memory(u32::MAX), None);
    }
}
