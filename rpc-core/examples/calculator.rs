//! A complete rpc-core program: define a handler, serve it in memory, call it through its
//! typed client and in the other two encodings.
//!
//! Run with `cargo run -p rpc-core --example calculator`.

use std::time::Duration;

use rpc_core::{memory, Client, Encoding, Registry, RpcError};

/// Arithmetic on request: the handler. Its `pub fn`s are the procedures `calculator.*`.
pub struct Calculator;

#[rpc_core::handler]
impl Calculator {
    /// Adds two numbers.
    pub fn add(a: i64, b: i64) -> i64 {
        a + b
    }

    /// Divides `a` by `b`; dividing by zero is the procedure's own error.
    pub fn divide(a: i64, b: i64) -> Result<i64, String> {
        a.checked_div(b)
            .ok_or_else(|| format!("cannot divide {a} by zero"))
    }

    /// Repeats `text` `times` times; a final `String` takes the rest of a text command.
    pub fn repeat(times: usize, text: String) -> Result<String, RpcError> {
        if times > 100 {
            return Err(RpcError::BadArguments("times must be at most 100".into()));
        }
        Ok(text.repeat(times))
    }

    /// Waits `ms` milliseconds: a slow procedure, run on a blocking thread.
    pub fn slow(ms: u64) -> u64 {
        std::thread::sleep(Duration::from_millis(ms));
        ms
    }
}

#[tokio::main]
async fn main() -> Result<(), RpcError> {
    // The consumer side: register the handler and serve it (here, in this process).
    let mut registry = Registry::new().with_workers(2);
    registry.register(Calculator);
    println!("serving {:?}", registry.procedure_names());
    let (transport, server) = memory::spawn(registry);

    // The producer side: the typed client that #[handler] generated.
    let calculator = CalculatorClient::new(transport.clone());
    println!("add(2, 40)        = {}", calculator.add(2, 40).await?);
    println!(
        "repeat(3, \"ab \") = {:?}",
        calculator.repeat(3, "ab ".into()).await?
    );
    println!("divide(1, 0)      = {:?}", calculator.divide(1, 0).await);
    println!(
        "repeat(1000, ..)  = {:?}",
        calculator.repeat(1000, "x".into()).await
    );

    // A per-call deadline: the caller gets `deadline exceeded` on time.
    let hurried = calculator.clone().with_timeout(Duration::from_millis(50));
    println!("slow(500) in 50ms = {:?}", hurried.slow(500).await);

    // The same procedures in the other encodings, as Python or `nc` would call them.
    let client = Client::new(transport);
    let json = br#"{"a": 1, "b": 2}"#.to_vec();
    let reply = client
        .call_raw("calculator.add", Encoding::Json, json)
        .await?;
    println!(
        "json  {{\"a\": 1, \"b\": 2}} -> {}",
        String::from_utf8_lossy(&reply)
    );
    let text = b"2 hello world ".to_vec();
    let reply = client
        .call_raw("calculator.repeat", Encoding::Text, text)
        .await?;
    println!(
        "text  \"2 hello world \" -> {:?}",
        String::from_utf8_lossy(&reply)
    );

    server.shutdown().await;
    Ok(())
}
