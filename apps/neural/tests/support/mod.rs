//! Shared by the integration tests: the one loaded analyzer and the labeled sentences.

use std::path::Path;
use std::sync::OnceLock;

use neural::Analyzer;

/// The analyzer, loaded once per test binary from the default model directory.
///
/// Panics with the fetch command when the model files are missing: these tests are never
/// skipped silently.
pub fn analyzer() -> &'static Analyzer {
    static ANALYZER: OnceLock<Analyzer> = OnceLock::new();
    ANALYZER.get_or_init(|| {
        let dir = neural::default_model_dir();
        match Analyzer::load(&dir) {
            Ok(a) => a,
            Err(e) => panic!(
                "cannot load the model from {}: {e}\n\
                 These tests need the model files: run ./scripts/fetch_model.sh",
                dir.display()
            ),
        }
    })
}

/// The labeled sentences of `data/<name>`: (is positive, sentence).
#[allow(dead_code)]
pub fn labeled(name: &str) -> Vec<(bool, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| match line.split_once('\t') {
            Some(("pos", s)) => (true, s.to_string()),
            Some(("neg", s)) => (false, s.to_string()),
            _ => panic!("{}: bad line {line:?}", path.display()),
        })
        .collect()
}
