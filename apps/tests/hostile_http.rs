//! Hostile HTTP clients against a real producer, all at once, while a well-behaved client
//! keeps calling: 1,000 idle connections, clients sending their headers one byte a second, a
//! 100 MiB body, bodies that are not JSON, and random bytes instead of HTTP. Every
//! well-behaved call succeeds on time, the slow and idle connections are closed after the
//! header timeout, and the producer's memory stays bounded.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use support::web::WebProducer;
use support::Consumer;

const FIB: &str = "/v1/call/fibonacci_generator.calculate";
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

fn connect(addr: &str) -> TcpStream {
    TcpStream::connect(addr).expect("connect to the producer")
}

/// Whether the server closed `stream` (read gives end of stream or a reset) within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream
        .set_read_timeout(Some(within))
        .expect("a read timeout");
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an error response (408/400) before the close
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn hostile_http_clients_never_stall_well_behaved_ones() {
    let a = Consumer::start(&["--transport", "tcp", "--no-model"]);
    let b = Consumer::start(&["--transport", "tcp", "--no-model"]);
    let producer = WebProducer::start(&[
        "--transport",
        "tcp",
        &a.port.to_string(),
        &b.port.to_string(),
        "--header-timeout",
        "2",
    ]);
    let addr = producer.url.trim_start_matches("http://").to_string();
    let rss_before = producer.memory("VmRSS").expect("producer RSS");

    // 1,000 idle connections that never send a byte.
    let mut idle: Vec<TcpStream> = (0..1000).map(|_| connect(&addr)).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let mut hostile = Vec::new();
    // 20 clients sending a request's headers one byte a second.
    for _ in 0..20 {
        let addr = addr.clone();
        hostile.push(std::thread::spawn(move || {
            let mut stream = connect(&addr);
            let request = format!("POST {FIB} HTTP/1.1\r\nhost: x\r\ncontent-length: 9\r\n\r\n");
            let started = Instant::now();
            for byte in request.bytes() {
                if stream.write_all(&[byte]).is_err() {
                    return Some(started.elapsed()); // closed on us
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            None
        }));
    }
    // A 100 MiB body, sent as fast as the producer takes it, again and again.
    {
        let addr = addr.clone();
        let stop = stop.clone();
        hostile.push(std::thread::spawn(move || {
            let chunk = vec![b'{'; 1 << 20];
            while !stop.load(Ordering::Relaxed) {
                let mut stream = connect(&addr);
                let head = format!(
                    "POST {FIB} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    100 << 20
                );
                let _ = stream.write_all(head.as_bytes());
                for _ in 0..100 {
                    if stream.write_all(&chunk).is_err() {
                        break;
                    }
                }
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                assert!(
                    answer.is_empty() || answer.starts_with("HTTP/1.1 413"),
                    "a 100 MiB body: {answer}"
                );
            }
            None
        }));
    }
    // Bodies that are not JSON, and random bytes instead of a request.
    {
        let addr = addr.clone();
        let stop = stop.clone();
        hostile.push(std::thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(5);
            while !stop.load(Ordering::Relaxed) {
                let mut stream = connect(&addr);
                let junk = "<xml>not json</xml>";
                let request = format!(
                    "POST {FIB} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{junk}",
                    junk.len()
                );
                stream.write_all(request.as_bytes()).expect("send");
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                assert!(answer.starts_with("HTTP/1.1 400"), "not JSON: {answer}");

                let mut stream = connect(&addr);
                let noise: Vec<u8> = (0..rng.random_range(1..4096)).map(|_| rng.random()).collect();
                let _ = stream.write_all(&noise);
                let _ = stream.shutdown(std::net::Shutdown::Write);
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
            }
            None
        }));
    }

    // Meanwhile, a well-behaved client: every call answered, correctly, on time.
    let runtime = test_support::current_thread_runtime();
    let latencies = runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut latencies = Vec::new();
        let until = Instant::now() + Duration::from_secs(6);
        while Instant::now() < until {
            let started = Instant::now();
            let response = client
                .post(producer.at(FIB))
                .body(r#"{"n": 90}"#)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .expect("a well-behaved call is answered");
            assert_eq!(response.status(), 200);
            assert_eq!(
                response.text().await.expect("a body"),
                "2880067194370816120"
            );
            latencies.push(started.elapsed());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        latencies
    });
    latencies_bounded(&latencies);

    // The idle connections were closed after the header timeout (6 s > 2 s have passed).
    let still_open = idle
        .iter_mut()
        .map(|s| closed_within(s, Duration::from_millis(200)))
        .filter(|closed| !closed)
        .count();
    assert_eq!(
        still_open, 0,
        "idle connections left open after the header timeout"
    );

    stop.store(true, Ordering::Relaxed);
    let mut slow_closed = 0;
    for (i, thread) in hostile.into_iter().enumerate() {
        let closed = thread.join().expect("a hostile client thread");
        if i < 20 {
            let after = closed.expect("a slow header sender was cut off");
            // A write just after the close may still be taken by the kernel: the next fails.
            let allowed = HEADER_TIMEOUT + Duration::from_secs(3);
            assert!(after < allowed, "cut off after {after:?}");
            slow_closed += 1;
        }
    }
    assert_eq!(slow_closed, 20);

    let peak = producer.memory("VmHWM").expect("producer peak RSS");
    eprintln!(
        "well-behaved calls: {}, p50 {:?}, max {:?}; producer RSS before {} MiB, peak {} MiB",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies.iter().max(),
        rss_before >> 20,
        peak >> 20
    );
    assert!(peak < 100 << 20, "producer peak RSS {} MiB", peak >> 20);
}

fn latencies_bounded(latencies: &[Duration]) {
    assert!(
        latencies.len() > 50,
        "only {} calls in 6 s",
        latencies.len()
    );
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let p99 = sorted[sorted.len() * 99 / 100];
    assert!(p99 < Duration::from_millis(500), "p99 {p99:?} under attack");
}
