//! [`Cases`]: which of a benchmark's measurements to run, from an environment variable.

/// The measurements a benchmark runs: every one, unless the environment variable names some
/// by their labels, separated by `|` (to profile one of them).
///
/// ```
/// use test_support::Cases;
///
/// let cases = Cases::new("floor|rpc, sync echo");
/// assert!(cases.wants("floor") && cases.wants("rpc, sync echo"));
/// assert!(!cases.wants("rpc, sync echo, 1 at a time") && !cases.all());
/// assert!(Cases::new("").wants("anything"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Cases {
    labels: Vec<String>,
}

impl Cases {
    /// The cases that `variable` names (all when it is unset or empty).
    pub fn from_env(variable: &str) -> Self {
        Self::new(&std::env::var(variable).unwrap_or_default())
    }

    /// The cases `list` names, `|`-separated (all when it is empty).
    pub fn new(list: &str) -> Self {
        let labels = list
            .split('|')
            .filter(|label| !label.is_empty())
            .map(str::to_string)
            .collect();
        Self { labels }
    }

    /// Whether every measurement runs.
    pub fn all(&self) -> bool {
        self.labels.is_empty()
    }

    /// Whether the measurement `label` runs.
    pub fn wants(&self, label: &str) -> bool {
        self.all() || self.labels.iter().any(|wanted| wanted == label)
    }
}
