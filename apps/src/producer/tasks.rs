//! [`Task`]s: what the producer asks the consumers to do, generated or read from stdin.

use std::fmt;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rpc_core::encoding::{decode_result, to_bincode};
use rpc_core::{text, Call, Encoding, RpcError};

use super::sentences;
use crate::workloads::BigNumber;

/// Which procedures the generator draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mix {
    /// Fibonacci and polarity with about equal odds (the seed's payload).
    #[default]
    Both,
    /// Fibonacci only: pure CPU, for scaling figures.
    Fibonacci,
    /// Polarity only.
    Polarity,
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "both" => Ok(Mix::Both),
            "fibonacci" => Ok(Mix::Fibonacci),
            "polarity" => Ok(Mix::Polarity),
            other => Err(format!(
                "unknown mix `{other}` (both, fibonacci or polarity)"
            )),
        }
    }
}

/// How a task's result is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Number,
    Polarity,
    Text,
}

/// One unit of work: a call, and how to show its result.
#[derive(Debug, Clone)]
pub struct Task {
    /// Sequence number, from 1.
    pub id: u64,
    /// The call to make (its timeout is set by the producer).
    pub call: Call,
    /// The call as a person reads it: `fibonacci_generator.calculate(5234)`.
    pub label: String,
    shape: Shape,
}

impl Task {
    /// `fibonacci_generator.calculate(n)`.
    ///
    /// # Errors
    /// Only if the arguments cannot be encoded, which does not happen for an `i64`.
    pub fn fibonacci(id: u64, n: i64) -> Result<Self, RpcError> {
        let label = format!("fibonacci_generator.calculate({n})");
        Self::bincode(
            id,
            "fibonacci_generator.calculate",
            &(n,),
            label,
            Shape::Number,
        )
    }

    /// `neural_analyzer.polarity(sentence)`.
    ///
    /// # Errors
    /// Only if the arguments cannot be encoded, which does not happen for a string.
    pub fn polarity(id: u64, sentence: &str) -> Result<Self, RpcError> {
        let label = format!("neural_analyzer.polarity({sentence:?})");
        Self::bincode(
            id,
            "neural_analyzer.polarity",
            &(sentence,),
            label,
            Shape::Polarity,
        )
    }

    fn bincode(
        id: u64,
        procedure: &str,
        args: &impl serde::Serialize,
        label: String,
        shape: Shape,
    ) -> Result<Self, RpcError> {
        let call = Call::new(procedure, Encoding::Bincode, to_bincode(args)?);
        Ok(Self {
            id,
            call,
            label,
            shape,
        })
    }

    /// A text command as the seed's clients send it: `fibonacci_generator calculate 10`.
    ///
    /// # Errors
    /// [`RpcError::Protocol`] when the line names no procedure.
    pub fn command(id: u64, line: &str) -> Result<Self, RpcError> {
        let command = text::parse_command(line)?;
        Ok(Self {
            id,
            label: format!("{} {}", command.procedure, command.args.trim()),
            call: Call::new(
                command.procedure,
                Encoding::Text,
                command.args.as_bytes().to_vec(),
            ),
            shape: Shape::Text,
        })
    }

    /// The procedure this task calls.
    pub fn procedure(&self) -> &str {
        &self.call.procedure
    }

    /// The result as a person reads it; long numbers are shortened to their ends and length.
    pub fn render(&self, bytes: &[u8]) -> String {
        let shown = match self.shape {
            Shape::Number => {
                decode_result::<BigNumber>(self.call.encoding, bytes).map(|n| n.to_string())
            }
            Shape::Polarity => {
                decode_result::<f32>(self.call.encoding, bytes).map(|p| format!("{p:+.3}"))
            }
            Shape::Text => Ok(String::from_utf8_lossy(bytes).into_owned()),
        };
        match shown {
            Ok(text) => shorten(&text),
            Err(err) => format!("<undecodable result: {err}>"),
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {}", self.id, self.label)
    }
}

/// `1234567890...0987654321 (1,045 digits)` for long results; short ones as they are.
pub fn shorten(text: &str) -> String {
    const KEEP: usize = 12;
    let chars = text.chars().count();
    if chars <= 3 * KEEP {
        return text.to_string();
    }
    let head: String = text.chars().take(KEEP).collect();
    let tail: String = text.chars().skip(chars - KEEP).collect();
    let unit = if text.bytes().all(|b| b.is_ascii_digit()) {
        "digits"
    } else {
        "chars"
    };
    format!("{head}...{tail} ({chars} {unit})")
}

/// The seed's client payload: random tasks, reproducible from a seed.
#[derive(Debug)]
pub struct Generator {
    rng: StdRng,
    mix: Mix,
    fibonacci_max: i64,
    next_id: u64,
}

/// The largest `n` the generator asks Fibonacci of unless told otherwise (the seed's 10,000).
pub const FIBONACCI_MAX: i64 = 10_000;

impl Generator {
    /// A generator drawing from `mix`, seeded with `seed` (random when `None`).
    pub fn new(seed: Option<u64>, mix: Mix) -> Self {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            rng,
            mix,
            fibonacci_max: FIBONACCI_MAX,
            next_id: 1,
        }
    }

    /// The same generator drawing Fibonacci's `n` from `100..=max` (at least 100): heavier
    /// tasks, for measuring how the work scales over consumers.
    pub fn with_fibonacci_max(mut self, max: i64) -> Self {
        self.fibonacci_max = max.max(100);
        self
    }

    /// The next task: `fibonacci_generator.calculate(100..=10000)` (up to the Fibonacci
    /// maximum) or `neural_analyzer.polarity(<sentence>)`.
    ///
    /// # Errors
    /// Only if encoding the arguments fails, which does not happen for these types.
    pub fn next_task(&mut self) -> Result<Task, RpcError> {
        let id = self.next_id;
        self.next_id += 1;
        let fibonacci = match self.mix {
            Mix::Both => self.rng.random_bool(0.5),
            Mix::Fibonacci => true,
            Mix::Polarity => false,
        };
        if fibonacci {
            Task::fibonacci(id, self.rng.random_range(100..=self.fibonacci_max))
        } else {
            let (text, _) = sentences::sentence(&mut self.rng);
            Task::polarity(id, &text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_tasks() {
        let mut a = Generator::new(Some(42), Mix::Both);
        let mut b = Generator::new(Some(42), Mix::Both);
        let labels = |g: &mut Generator| {
            (0..40)
                .map(|_| g.next_task().unwrap().label)
                .collect::<Vec<_>>()
        };
        let first = labels(&mut a);
        assert_eq!(first, labels(&mut b));
        let fib = first.iter().filter(|l| l.starts_with("fibonacci")).count();
        assert!(
            (10..=30).contains(&fib),
            "about equal odds, got {fib} of 40"
        );
    }

    #[test]
    fn fibonacci_mix_has_only_fibonacci() {
        let mut g = Generator::new(Some(1), Mix::Fibonacci);
        assert!(
            (0..20).all(|_| g.next_task().unwrap().procedure() == "fibonacci_generator.calculate")
        );
    }

    #[test]
    fn commands_and_shortening() {
        let task = Task::command(3, "fibonacci_generator calculate 10").unwrap();
        assert_eq!(task.call.procedure, "fibonacci_generator.calculate");
        assert_eq!(task.render(b"55"), "55");
        assert!(Task::command(1, "  ").is_err());
        let long = "1".repeat(100);
        assert_eq!(
            shorten(&long),
            format!("{}...{} (100 digits)", "1".repeat(12), "1".repeat(12))
        );
    }
}
