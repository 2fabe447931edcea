//! Length grouping: which inputs of a batch share one padded forward pass.
//!
//! A forward pass over `k` inputs padded to the longest one's `width` tokens costs about as
//! much as `k × width` real tokens plus a fixed part that does not depend on the input (the
//! six layers' weights are read once per pass, whatever its size). Putting inputs of very
//! different lengths into one pass wastes the padding; giving each its own pass pays the fixed
//! part each time. [`BatchPlan::new`] sorts the inputs by length and splits the sorted run
//! where that total is least (an exact search over the split points, not a rule of thumb),
//! with every pass held to [`MAX_PASS_TOKENS`] padded tokens so memory stays bounded.

/// Most padded tokens (inputs × width) in one forward pass.
///
/// Bounds a pass's memory: the attention scores of a pass take `inputs × 12 heads × width²`
/// floats per layer, 25 MB at 8 inputs of 256 tokens. One input of up to
/// [`MAX_TOKENS`](crate::MAX_TOKENS) always fits.
pub const MAX_PASS_TOKENS: usize = 2048;

/// The fixed part of a forward pass's cost, in padded tokens.
///
/// Measured with `polarity_bench cost` on one thread: a pass over `k` inputs of `w` tokens
/// (`k·w` up to 256) took `5.67 + 0.245·k·w` milliseconds of CPU, and this is `a / b`
/// rounded (see `docs/benchmarks.md`, "Neural batching"). A larger value makes the plan
/// merge more readily, a smaller one split more readily.
pub const PASS_COST_TOKENS: usize = 23;

/// How one batch is split into padded forward passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    /// The passes, each the indices (into the lengths given) of its inputs, shortest first.
    passes: Vec<Vec<usize>>,
    /// Tokens of real input over all passes.
    real_tokens: usize,
    /// Tokens including padding over all passes.
    padded_tokens: usize,
}

impl BatchPlan {
    /// Plans the passes for inputs of the given token counts (the index is the input's place
    /// in the caller's batch).
    ///
    /// Every index appears in exactly one pass. The inputs are sorted by length (stable, so
    /// equal lengths keep their order) and split into runs minimising the total
    /// `PASS_COST_TOKENS + inputs × width` over the passes, each of at most
    /// [`MAX_PASS_TOKENS`] padded tokens unless a single input is longer.
    ///
    /// ```
    /// let plan = neural::BatchPlan::new(&[15, 256, 14, 16, 3]);
    /// assert_eq!(plan.passes(), &[vec![4, 2, 0, 3], vec![1]]);
    /// ```
    pub fn new(lengths: &[usize]) -> BatchPlan {
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.sort_by_key(|&i| lengths[i]);
        let sorted: Vec<usize> = order.iter().map(|&i| lengths[i]).collect();

        // best[j]: least cost of the first j sorted inputs; start[j]: where its last pass starts.
        let n = sorted.len();
        let mut best = vec![0usize; n + 1];
        let mut start = vec![0usize; n + 1];
        for j in 1..=n {
            let width = sorted[j - 1];
            best[j] = usize::MAX;
            for i in (0..j).rev() {
                let padded = (j - i) * width;
                if i + 1 < j && padded > MAX_PASS_TOKENS {
                    break;
                }
                let cost = best[i] + PASS_COST_TOKENS + padded;
                if cost < best[j] {
                    best[j] = cost;
                    start[j] = i;
                }
            }
        }

        let mut passes = Vec::new();
        let mut end = n;
        while end > 0 {
            passes.push(order[start[end]..end].to_vec());
            end = start[end];
        }
        passes.reverse();
        let real_tokens = lengths.iter().sum();
        let padded_tokens = passes
            .iter()
            .map(|p| p.len() * p.iter().map(|&i| lengths[i]).max().unwrap_or(0))
            .sum();
        BatchPlan {
            passes,
            real_tokens,
            padded_tokens,
        }
    }

    /// The forward passes, each the indices of its inputs, shortest first.
    pub fn passes(&self) -> &[Vec<usize>] {
        &self.passes
    }

    /// Tokens of real input in the batch.
    pub fn real_tokens(&self) -> usize {
        self.real_tokens
    }

    /// Tokens the passes compute, padding included.
    pub fn padded_tokens(&self) -> usize {
        self.padded_tokens
    }

    /// The share of computed tokens that are real input, in (0, 1]; 1 for an empty batch.
    pub fn real_fraction(&self) -> f64 {
        if self.padded_tokens == 0 {
            1.0
        } else {
            self.real_tokens as f64 / self.padded_tokens as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers_each_once(plan: &BatchPlan, n: usize) {
        let mut seen: Vec<usize> = plan.passes().iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn empty_batch_has_no_pass() {
        let plan = BatchPlan::new(&[]);
        assert!(plan.passes().is_empty());
        assert_eq!(plan.real_fraction(), 1.0);
    }

    #[test]
    fn similar_lengths_share_one_pass() {
        let lengths = [15, 13, 17, 14, 16, 15, 13, 17];
        let plan = BatchPlan::new(&lengths);
        assert_eq!(plan.passes().len(), 1);
        covers_each_once(&plan, lengths.len());
        assert_eq!(plan.real_tokens(), 120);
        assert_eq!(plan.padded_tokens(), 8 * 17);
    }

    #[test]
    fn a_long_input_gets_a_pass_of_its_own() {
        let lengths = [15, 256, 14, 16, 3];
        let plan = BatchPlan::new(&lengths);
        assert_eq!(plan.passes(), &[vec![4, 2, 0, 3], vec![1]]);
        assert_eq!(plan.padded_tokens(), 4 * 16 + 256);
    }

    #[test]
    fn passes_stay_within_the_token_bound() {
        let lengths: Vec<usize> = (0..100).map(|i| 3 + (i * 37) % 254).collect();
        let plan = BatchPlan::new(&lengths);
        covers_each_once(&plan, lengths.len());
        for pass in plan.passes() {
            let width = pass.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(pass.len() * width <= MAX_PASS_TOKENS, "{pass:?}");
        }
        assert!(plan.real_fraction() > 0.9, "{}", plan.real_fraction());
    }

    #[test]
    fn the_split_is_the_cheapest() {
        // Every way to cut 3 sorted lengths into runs, against the plan's total.
        let lengths = [3, 40, 44];
        let cost = |runs: &[&[usize]]| -> usize {
            runs.iter()
                .map(|r| PASS_COST_TOKENS + r.len() * r.iter().max().unwrap())
                .sum()
        };
        let all = [
            cost(&[&[3, 40, 44]]),
            cost(&[&[3], &[40, 44]]),
            cost(&[&[3, 40], &[44]]),
            cost(&[&[3], &[40], &[44]]),
        ];
        let plan = BatchPlan::new(&lengths);
        assert_eq!(
            plan.padded_tokens() + plan.passes().len() * PASS_COST_TOKENS,
            *all.iter().min().unwrap()
        );
    }
}
