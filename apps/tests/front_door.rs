//! The producer's HTTP front door, called by a real HTTP client (reqwest) while it dispatches to
//! two real consumer processes, over TCP and over AMQP: every status code, a burst of 1,000
//! concurrent requests each checked against an independent computation, admission control
//! under saturation, readiness, and /metrics parsed against what was sent.

mod support;

use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use support::web::{fibonacci_table, parse_prometheus, sum, WebProducer};
use support::Consumer;

const FIB: &str = "/v1/call/fibonacci_generator.calculate";

fn http() -> Client {
    Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

/// Posts `body` (raw bytes) to `path`; returns the status, the `Retry-After` header and the
/// body.
async fn post(
    client: &Client,
    producer: &WebProducer,
    path: &str,
    body: impl Into<reqwest::Body>,
    timeout: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let mut request = client
        .post(producer.at(path))
        .header("content-type", "application/json")
        .body(body);
    if let Some(timeout) = timeout {
        request = request.header("x-timeout", timeout);
    }
    let response = request.send().await.expect("the request is answered");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry_after, response.text().await.expect("a body"))
}

/// The `error.type` of an error body; panics when the body is not the error shape.
fn error_type(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    value["error"]["type"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.type in {body}"))
        .to_string()
}

async fn get(client: &Client, producer: &WebProducer, path: &str) -> (StatusCode, String) {
    let response = client
        .get(producer.at(path))
        .send()
        .await
        .expect("answered");
    (response.status(), response.text().await.expect("a body"))
}

fn tcp_consumers(extra: &[&str]) -> (Consumer, Consumer) {
    let mut args = vec!["--transport", "tcp", "--no-model"];
    args.extend_from_slice(extra);
    (Consumer::start(&args), Consumer::start(&args))
}

/// Every status a call to the workloads can get, each reached by a real request and checked:
/// 200, 400 (twice), 404, 413, 422, 504 (500 has a test of its own below).
async fn every_status(producer: &WebProducer) {
    let client = http();
    let (status, body) = get(&client, producer, "/healthz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ready = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(&client, producer, "/readyz").await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < ready, "never ready: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (status, _, body) = post(&client, producer, FIB, r#"{"n": 90}"#, None).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "2880067194370816120")
    );
    let (status, _, body) = post(&client, producer, FIB, r#"{"n": 300}"#, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        fibonacci_table(300)[300].to_string(),
        "an exact JSON integer"
    );

    let cases: [(&str, String, StatusCode, &str); 6] = [
        (
            "/v1/call/nobody.here",
            "{}".into(),
            StatusCode::NOT_FOUND,
            "UnknownProcedure",
        ),
        (
            FIB,
            r#"{"n": "ninety"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "BadArguments",
        ),
        (
            FIB,
            "{}".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "BadArguments",
        ),
        (FIB, "n=90".into(), StatusCode::BAD_REQUEST, "BadArguments"),
        (FIB, "[90]".into(), StatusCode::BAD_REQUEST, "BadArguments"),
        (
            FIB,
            format!(r#"{{"n": 1, "pad": "{}"}}"#, "x".repeat(100_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "Protocol",
        ),
    ];
    for (path, body, want, kind) in cases {
        let shown = body.chars().take(40).collect::<String>();
        let (status, _, answer) = post(&client, producer, path, body, None).await;
        assert_eq!(status, want, "{path} {shown}: {answer}");
        assert_eq!(error_type(&answer), kind, "{answer}");
    }
    let missing = post(&client, producer, FIB, "{}", None).await.2;
    assert!(missing.contains("`n`"), "names the parameter: {missing}");

    // F(10,000,000) takes the consumer most of a second: a 0.2 s timeout passes first.
    let started = Instant::now();
    let (status, _, body) = post(&client, producer, FIB, r#"{"n": 10000000}"#, Some("0.2")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(error_type(&body), "DeadlineExceeded");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "on time: {:?}",
        started.elapsed()
    );
    let (status, _, body) = post(&client, producer, FIB, r#"{"n": 5}"#, Some("soon")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// 1,000 requests at once, n from 0 to 999: each answer equal to F(n) computed here.
async fn burst_of_1000(producer: &WebProducer) {
    let client = http();
    let table = fibonacci_table(999);
    let calls = (0..1000usize).map(|n| {
        let client = client.clone();
        async move {
            let body = json!({ "n": n }).to_string();
            (n, post(&client, producer, FIB, body, None).await)
        }
    });
    let answers = join_all(calls).await;
    for (n, (status, _, body)) in answers {
        assert_eq!(status, StatusCode::OK, "F({n}): {body}");
        assert_eq!(body, table[n].to_string(), "F({n})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_every_status_code() {
    let (a, b) = tcp_consumers(&[]);
    let producer = WebProducer::start(&[
        "--transport",
        "tcp",
        &a.port.to_string(),
        &b.port.to_string(),
        "--max-body",
        "65536",
    ]);
    every_status(&producer).await;
}

/// A handler whose procedures fail: the workloads never fail on valid input.
struct Faulty;

#[rpc_core::handler]
impl Faulty {
    /// Fails with `reason`.
    pub fn fail(reason: String) -> Result<i64, String> {
        Err(reason)
    }

    /// Panics.
    pub fn explode() -> i64 {
        panic!("boom on purpose")
    }
}

/// 500 for a procedure that failed and for one that panicked: the producer process calls a
/// real TCP consumer (served here, on a real socket, by rpc-core's registry) whose procedures
/// fail; the consumer keeps serving after the panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_panicked_procedures_are_500() {
    let mut registry = rpc_core::Registry::new();
    registry.register(Faulty);
    let server = transport_tcp::TcpServer::bind(
        "127.0.0.1:0",
        registry,
        transport_tcp::TcpServerConfig::default(),
    )
    .await
    .expect("a consumer of failing procedures");
    let port = server.local_addr().port().to_string();
    let producer = WebProducer::start(&["--transport", "tcp", &port]);
    let client = http();
    for _ in 0..2 {
        let (status, _, body) = post(
            &client,
            &producer,
            "/v1/call/faulty.fail",
            r#"{"reason": "no luck"}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(error_type(&body), "Failed");
        assert!(body.contains("no luck"), "{body}");
        let (status, _, body) =
            post(&client, &producer, "/v1/call/faulty.explode", "{}", None).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(error_type(&body), "Panicked");
        assert!(body.contains("boom on purpose"), "{body}");
    }
    server.shutdown().await;
}

/// 1,000 concurrent requests through two TCP consumers; then /metrics counts exactly them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_burst_of_1000_then_metrics_count_it() {
    let (a, b) = tcp_consumers(&[]);
    let producer = WebProducer::start(&[
        "--transport",
        "tcp",
        &a.port.to_string(),
        &b.port.to_string(),
        // All 1,000 are let wait: this checks the answers, not the admission.
        "--max-waiting",
        "1000",
        "--max-queue-time",
        "30",
    ]);
    burst_of_1000(&producer).await;

    let client = http();
    let (status, text) = get(&client, &producer, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let metrics = parse_prometheus(&text);
    let calls = "rpc_producer_calls_total";
    let ok = [
        ("procedure", "fibonacci_generator.calculate"),
        ("outcome", "ok"),
    ];
    assert_eq!(sum(&metrics, calls, &ok), 1000.0, "{text}");
    assert_eq!(sum(&metrics, calls, &[]), 1000.0, "nothing else counted");
    for consumer in [&a, &b] {
        let addr = format!("127.0.0.1:{}", consumer.port);
        let served = sum(&metrics, calls, &[("consumer", &addr)]);
        assert!(served >= 100.0, "{addr} served {served} of 1000");
    }
    let latency = "rpc_producer_call_seconds_count";
    assert_eq!(
        sum(
            &metrics,
            latency,
            &[("procedure", "fibonacci_generator.calculate")]
        ),
        1000.0
    );
    let inf = [
        ("procedure", "fibonacci_generator.calculate"),
        ("le", "+Inf"),
    ];
    assert_eq!(
        sum(&metrics, "rpc_producer_call_seconds_bucket", &inf),
        1000.0
    );
    assert_eq!(
        sum(&metrics, "rpc_http_responses_total", &[("status", "200")]),
        1000.0
    );
    assert_eq!(sum(&metrics, "rpc_producer_rejected_total", &[]), 0.0);
    assert_eq!(sum(&metrics, "rpc_producer_consumers_up", &[]), 2.0);
    assert_eq!(sum(&metrics, "rpc_producer_in_flight", &[]), 0.0);
    assert_eq!(sum(&metrics, "rpc_producer_waiting", &[]), 0.0);
}

/// Consumers started with --metrics-listen count the calls they ran (the metrics rpc-core's
/// registry emits): 200 calls over two consumers, each counted once, with run and wait times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_metrics_count_what_was_sent() {
    let ports = [free_port(), free_port()];
    let listen: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let a = Consumer::start(&[
        "--transport",
        "tcp",
        "--no-model",
        "--metrics-listen",
        &listen[0],
    ]);
    let b = Consumer::start(&[
        "--transport",
        "tcp",
        "--no-model",
        "--metrics-listen",
        &listen[1],
    ]);
    let producer = WebProducer::start(&[
        "--transport",
        "tcp",
        &a.port.to_string(),
        &b.port.to_string(),
        // All 200 are let wait: this counts calls, not the admission.
        "--max-queue-time",
        "30",
    ]);
    let client = http();
    let calls = (0..200).map(|n| {
        let client = client.clone();
        let producer = &producer;
        async move { post(&client, producer, FIB, json!({ "n": n }).to_string(), None).await }
    });
    for (status, _, body) in join_all(calls).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let unknown = post(
        &client,
        &producer,
        "/v1/call/fibonacci_generator.nothing",
        "{}",
        None,
    );
    assert_eq!(unknown.await.0, StatusCode::NOT_FOUND);

    let mut ok = 0.0;
    let mut runs = 0.0;
    let mut waits = 0.0;
    for addr in &listen {
        let text = client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("the consumer serves /metrics")
            .text()
            .await
            .expect("a body");
        let metrics = parse_prometheus(&text);
        let fib = [("procedure", "fibonacci_generator.calculate")];
        let fib_ok = [fib[0], ("outcome", "ok")];
        ok += sum(&metrics, "rpc_consumer_calls_total", &fib_ok);
        runs += sum(&metrics, "rpc_consumer_run_seconds_count", &fib);
        waits += sum(&metrics, "rpc_consumer_wait_seconds_count", &fib);
        assert!(
            metrics.contains_key("rpc_consumer_workers_busy"),
            "no rpc_consumer_workers_busy at {addr}:\n{text}"
        );
    }
    assert_eq!(
        ok, 200.0,
        "each call counted once, by the consumer that ran it"
    );
    assert_eq!(runs, 200.0);
    assert_eq!(waits, 200.0);
}

/// The consumers saturated (2 places, each call most of a second): 20 more requests all get
/// 503 Overloaded with Retry-After promptly (none waits past the queue-time target, 20 ms by
/// default), the 2 admitted ones succeed, and /metrics counts the 20 rejections. A client that
/// goes away frees its place at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_refuses_excess_at_once_while_admitted_calls_succeed() {
    let (a, b) = tcp_consumers(&[]);
    let producer = WebProducer::start(&[
        "--transport",
        "tcp",
        &a.port.to_string(),
        &b.port.to_string(),
        "--max-in-flight",
        "2",
    ]);
    let client = http();
    let heavy = r#"{"n": 10000000}"#;
    let admitted: Vec<_> = (0..2)
        .map(|_| {
            let client = client.clone();
            let url = producer.at(FIB);
            tokio::spawn(async move {
                let response = client.post(url).body(heavy).send().await.expect("answered");
                (
                    response.status(),
                    response.text().await.expect("a body").len(),
                )
            })
        })
        .collect();
    wait_until_admitted(&client, &producer, 2, 0).await;

    let started = Instant::now();
    let excess = (0..20).map(|_| post(&client, &producer, FIB, r#"{"n": 10}"#, None));
    for (status, retry_after, body) in join_all(excess).await {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(error_type(&body), "Overloaded");
        assert_eq!(retry_after.as_deref(), Some("1"));
    }
    let refused_in = started.elapsed();
    assert!(
        refused_in < Duration::from_millis(300),
        "20 refusals took {refused_in:?}"
    );

    for call in admitted {
        let (status, length) = call.await.expect("the admitted call");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(length, 2_089_877, "F(10,000,000) has 2,089,877 digits");
    }
    let metrics = parse_prometheus(&get(&client, &producer, "/metrics").await.1);
    assert_eq!(sum(&metrics, "rpc_producer_rejected_total", &[]), 20.0);
    assert_eq!(
        sum(&metrics, "rpc_http_responses_total", &[("status", "503")]),
        20.0
    );

    // A client that gives up: its place is freed as soon as it is gone.
    let gone = client
        .post(producer.at(FIB))
        .body(heavy)
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(gone.is_err(), "the client timed out");
    wait_until_admitted(&client, &producer, 0, 0).await;
}

#[tokio::test]
async fn a_client_that_gives_up_in_line_leaves_it() {
    let consumer = Consumer::start(&["--transport", "tcp", "--no-model"]);
    let producer = WebProducer::start(&[
        "--transport",
        "tcp",
        &consumer.port.to_string(),
        "--max-in-flight",
        "1",
        "--max-queue-time",
        "10",
    ]);
    let client = http();
    let heavy = tokio::spawn({
        let client = client.clone();
        let url = producer.at(FIB);
        async move {
            let response = client.post(url).body(r#"{"n": 10000000}"#).send().await;
            response.expect("answered").status()
        }
    });
    wait_until_admitted(&client, &producer, 1, 0).await;

    // Three clients wait in line behind it and give up (their own 100 ms timeout).
    let gone = (0..3).map(|_| {
        client
            .post(producer.at(FIB))
            .body(r#"{"n": 10}"#)
            .timeout(Duration::from_millis(100))
            .send()
    });
    for gone in join_all(gone).await {
        assert!(gone.is_err(), "the client timed out: {gone:?}");
    }
    // They left the line: once the heavy call is answered, a lone call runs at once.
    wait_until_admitted(&client, &producer, 1, 0).await;
    assert_eq!(heavy.await.expect("the heavy call"), StatusCode::OK);
    let started = Instant::now();
    let (status, _, body) = post(&client, &producer, FIB, r#"{"n": 10}"#, None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "55"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// Polls the dashboard's data until `in_flight` and `waiting` are as given (10 s at most).
async fn wait_until_admitted(client: &Client, producer: &WebProducer, running: u64, waiting: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = get(client, producer, "/v1/dashboard").await;
        let data: Value = serde_json::from_str(&body).expect("dashboard JSON");
        if data["in_flight"] == running && data["waiting"] == waiting {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never {running} running and {waiting} waiting: {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A producer whose only consumer is not there: not ready (503), and a call gets 503
/// NoConsumer with Retry-After, while /healthz still answers 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_consumer_is_503_and_not_ready() {
    let port = free_port().to_string();
    let producer = WebProducer::start(&["--transport", "tcp", &port]);
    let client = http();
    assert_eq!(get(&client, &producer, "/healthz").await.0, StatusCode::OK);
    let (status, body) = get(&client, &producer, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, retry_after, body) =
        post(&client, &producer, FIB, r#"{"n": 10}"#, Some("20")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(error_type(&body), "NoConsumer");
    assert_eq!(retry_after.as_deref(), Some("1"));
}

/// The same over the broker: two AMQP consumers, every status, and a burst of 1,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_every_status_code_and_a_burst_of_1000() {
    let _a = Consumer::start(&["--transport", "amqp", "--no-model"]);
    let _b = Consumer::start(&["--transport", "amqp", "--no-model"]);
    let producer = WebProducer::start(&[
        "--transport",
        "amqp",
        "--max-body",
        "65536",
        "--max-waiting",
        "1000",
        "--max-queue-time",
        "30",
    ]);
    every_status(&producer).await;
    burst_of_1000(&producer).await;
    let (status, body) = get(&http(), &producer, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ready: Value = serde_json::from_str(&body).expect("JSON");
    assert!(ready["consumers_up"].as_u64() >= Some(2), "{body}");
}

/// A TCP port nothing listens on (bound, then closed).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
