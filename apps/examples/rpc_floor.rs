//! The RPC floor of the front door's benchmark: direct calls through a `TcpTransport` (a pool over the consumers), as the
//! producer makes them, with no HTTP in front: `rpc_floor SECONDS CONCURRENCY N PORT...` calls
//! `fibonacci_generator.calculate(N)` (JSON, as the front door does) from CONCURRENCY callers
//! for SECONDS and prints calls/s, p50 and p99.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpc_apps::producer::Latencies;
use rpc_core::{Client, Encoding};
use transport_tcp::{TcpTransport, TcpTransportConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        return Err("usage: rpc_floor SECONDS CONCURRENCY N PORT...".into());
    }
    let seconds: f64 = args[0].parse()?;
    let concurrency: usize = args[1].parse()?;
    let body = format!("{{\"n\": {}}}", args[2].parse::<u64>()?);
    let pool = TcpTransport::new(&args[3..], TcpTransportConfig::default())?;
    let client = Client::new(pool);
    // Warm up: the pool connects in the background.
    client
        .call_raw(
            "fibonacci_generator.calculate",
            Encoding::Json,
            body.clone().into(),
        )
        .await?;

    let latencies = Arc::new(Mutex::new(Latencies::new()));
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let callers: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let latencies = latencies.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let mut failed = 0u64;
                while Instant::now() < until {
                    let at = Instant::now();
                    let result = client
                        .call_raw(
                            "fibonacci_generator.calculate",
                            Encoding::Json,
                            body.clone().into(),
                        )
                        .await;
                    let took = at.elapsed();
                    match result {
                        Ok(_) => latencies.lock().expect("not poisoned").record(took),
                        Err(_) => failed += 1,
                    }
                }
                failed
            })
        })
        .collect();
    let mut failed = 0;
    for caller in callers {
        failed += caller.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let latencies = latencies.lock().expect("not poisoned");
    let ms = |q| latencies.quantile(q).map_or(0.0, |d| d.as_secs_f64() * 1e3);
    println!(
        "rpc_floor: {} calls in {elapsed:.1} s = {:.0} calls/s, p50 {:.3} ms, p99 {:.3} ms, failed {failed}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        ms(0.5),
        ms(0.99)
    );
    Ok(())
}
