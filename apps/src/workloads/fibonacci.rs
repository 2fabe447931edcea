//! `fibonacci_generator.calculate(n)`: the exact n-th Fibonacci number.

use num_bigint::BigUint;
use rpc_core::{Cancellation, RpcError};

use super::BigNumber;

/// The largest `n` served. F(10,000,000) has 2,089,877 digits and takes about 2.3 s on one
/// core here (F(1,000,000): 0.12 s); larger requests are refused as `bad arguments` rather than
/// allowed to pin a worker for minutes or grow a reply towards the frame limit.
pub const MAX_N: i64 = 10_000_000;

/// Big-number arithmetic on request: the seed's `FibonacciGenerator` class.
#[derive(Debug, Clone, Copy, Default)]
pub struct FibonacciGenerator;

#[rpc_core::handler]
impl FibonacciGenerator {
    /// The exact `n`-th Fibonacci number (F(0) = 0, F(1) = 1), by fast doubling.
    ///
    /// Stops early when the call is cancelled (its caller gave up or its deadline passed):
    /// between any two of its big multiplications, so within about a sixth of the whole run.
    ///
    /// # Errors
    /// `bad arguments` when `n` is negative or above [`MAX_N`]; `cancelled` or `deadline
    /// exceeded` when it stopped early.
    pub fn calculate(n: i64, cancel: Cancellation) -> Result<BigNumber, RpcError> {
        if !(0..=MAX_N).contains(&n) {
            return Err(RpcError::BadArguments(format!(
                "parameter `n`: must be between 0 and {MAX_N}, got {n}"
            )));
        }
        Ok(BigNumber(Self::fast_doubling(n as u64, &cancel)?.0))
    }

    /// (F(n), F(n+1)) from F(2k) = F(k)(2F(k+1) - F(k)) and F(2k+1) = F(k)^2 + F(k+1)^2, walking
    /// the bits of `n` from the top: O(log n) big multiplications, `cancel` checked between
    /// each two.
    fn fast_doubling(n: u64, cancel: &Cancellation) -> Result<(BigUint, BigUint), RpcError> {
        let mut a = BigUint::ZERO; // F(k)
        let mut b = BigUint::from(1u8); // F(k+1)
        for bit in (0..u64::BITS - n.leading_zeros()).rev() {
            cancel.check()?;
            let twice_b = &b << 1u8;
            let c = &a * (twice_b - &a); // F(2k)
            cancel.check()?;
            let a2 = &a * &a;
            cancel.check()?;
            let d = a2 + &b * &b; // F(2k+1)
            if (n >> bit) & 1 == 1 {
                b = &c + &d;
                a = d;
            } else {
                a = c;
                b = d;
            }
        }
        Ok((a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, independent of fast doubling.
    fn by_addition(n: u64) -> BigUint {
        let (mut a, mut b) = (BigUint::ZERO, BigUint::from(1u8));
        for _ in 0..n {
            let next = &a + &b;
            a = std::mem::replace(&mut b, next);
        }
        a
    }

    fn fib(n: i64) -> String {
        FibonacciGenerator::calculate(n, Cancellation::never())
            .unwrap()
            .to_string()
    }

    #[test]
    fn known_values() {
        assert_eq!(fib(0), "0");
        assert_eq!(fib(1), "1");
        assert_eq!(fib(2), "1");
        assert_eq!(fib(10), "55");
        assert_eq!(fib(90), "2880067194370816120");
        assert_eq!(fib(100), "354224848179261915075");
    }

    #[test]
    fn agrees_with_the_definition() {
        for n in (0..300).chain([1000, 1001, 4095, 4096, 10_000]) {
            assert_eq!(fib(n as i64), by_addition(n).to_string(), "F({n})");
        }
    }

    #[test]
    fn f_1000_has_its_known_digits() {
        let f = fib(1000);
        assert_eq!(f.len(), 209);
        assert!(f.starts_with("4346655768693745643568852767504062580256466051737178040248172908953655541794905189040387984007925516929592259308032263477520968962323987332247116164299644090653318793829896964992851600370447613779516684922887"));
        assert!(f.ends_with("228875"));
    }

    #[test]
    fn limits_are_bad_arguments() {
        for n in [-1, MAX_N + 1, i64::MAX] {
            match FibonacciGenerator::calculate(n, Cancellation::never()) {
                Err(RpcError::BadArguments(message)) => {
                    assert!(message.contains(&MAX_N.to_string()), "{message}")
                }
                other => panic!("F({n}) gave {other:?}"),
            }
        }
        assert_eq!(fib(1_000_000).len(), 208_988);
    }
}
