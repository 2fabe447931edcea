//! The venv's python for the aio-pika peers, made by `scripts/python_venv.sh` if needed (once
//! per process: the tests run in parallel); fails loudly without it. Shared by the interop
//! tests and the bench (`#[path]`), as `peer_queue.rs` is.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The python of the repository's venv.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(make_venv).clone()
}

fn make_venv() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace");
    let stdout = test_support::stdout_of(&mut std::process::Command::new(
        repo.join("scripts/python_venv.sh"),
    ));
    PathBuf::from(stdout.lines().last().expect("the python path").trim())
}
