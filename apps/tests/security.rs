//! Who may call, tried on the real binaries: protected mode (a consumer or a front door asked
//! to listen off loopback, unsecured, refuses to start and names the flags; `--insecure` and
//! the secure settings are accepted), the front door's API keys (401 without a key accepted,
//! the probes open, keys reloaded on SIGHUP), and no secret or key in any log, page or metric.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::Value;
use support::web::WebProducer;
use support::Consumer;
use test_support::pki::Ca;

const FIB: &str = "/v1/call/fibonacci_generator.calculate";
const KEY_A: &str = "key-alpha-7f3c9e21d4b8a605";
const KEY_B: &str = "key-bravo-2e8d4c6a1f9b3750";
const KEY_C: &str = "key-charlie-5a1e7d3b9c2f4860";

/// A file under the temp directory holding `text`, unique to this test process.
fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("rpc-security-{}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("write a temp file");
    path
}

/// Starts `binary` with `args` and `env`, logging at `info` to a piped stderr.
fn spawn(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(binary)
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary")
}

/// Runs `binary` with `args` and `env` until it exits (at most 20 s); its status and stderr.
fn run_to_exit(binary: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut child = spawn(binary, args, env);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{binary} {args:?} did not exit: it started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (status.success(), stderr)
}

/// Starts `binary` and waits (30 s at most) for a stderr line containing `needle`; returns the
/// child and that line. Panics if the process exits first.
fn start_until(binary: &str, args: &[&str], env: &[(&str, &str)], needle: &str) -> (Child, String) {
    let mut child = spawn(binary, args, env);
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[started] {line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) if line.contains(needle) => return (child, line),
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("{binary} {args:?} exited ({status}) before logging {needle:?}");
                }
                assert!(Instant::now() < deadline, "no {needle:?} from {binary}");
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().expect("wait");
                panic!("{binary} {args:?} exited ({status}) before logging {needle:?}");
            }
        }
    }
}

/// The port after `addr=<host>:` in a log line.
fn port_in(line: &str) -> u16 {
    line.split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// One text-protocol call (`fibonacci_generator calculate 10`) to 127.0.0.1:`port`.
fn text_call(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .write_all(b"fibonacci_generator calculate 10\n")
        .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer.trim().to_string()
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn protected_mode_refuses_off_loopback_until_secured_or_told_insecure() {
    let consumer = env!("CARGO_BIN_EXE_consumer");
    let producer = env!("CARGO_BIN_EXE_producer");

    // A consumer on every interface, nothing securing it: refused, and told how.
    let open = ["--host", "0.0.0.0", "--port", "0", "--no-model"];
    let (ok, stderr) = run_to_exit(consumer, &open, &[]);
    assert!(!ok, "refused with a failure status: {stderr}");
    for flag in [
        "protected mode",
        "--insecure",
        "--tls-cert",
        "RPC_SECRET_FILE",
    ] {
        assert!(stderr.contains(flag), "names {flag}: {stderr}");
    }
    // The same front door: refused, and told how.
    let (ok, stderr) = run_to_exit(producer, &["--listen", "0.0.0.0:0", "9"], &[]);
    assert!(!ok, "refused with a failure status: {stderr}");
    for flag in ["protected mode", "--insecure", "--api-keys"] {
        assert!(stderr.contains(flag), "names {flag}: {stderr}");
    }

    // --insecure accepts the risk: the consumer serves, and answers a plain text call.
    let mut insecure = open.to_vec();
    insecure.push("--insecure");
    let (child, line) = start_until(consumer, &insecure, &[], "consumer listening");
    assert_eq!(text_call(port_in(&line)), "55");
    stop(child);

    // A shared secret (from a file) secures it: it starts.
    let secret = temp_file("secret", "s3cret-for-protected-mode-0123456789\n");
    let secret_env = [("RPC_SECRET_FILE", secret.to_str().expect("UTF-8 path"))];
    let (child, _) = start_until(consumer, &open, &secret_env, "consumer listening");
    stop(child);
    // Its metrics listener has no authentication: off loopback it is refused even then,
    // until told --insecure; on loopback it serves.
    let metrics_open = [&open[..], &["--metrics-listen", "0.0.0.0:0"]].concat();
    let (ok, stderr) = run_to_exit(consumer, &metrics_open, &secret_env);
    assert!(!ok, "metrics off loopback refused: {stderr}");
    for flag in ["protected mode", "--metrics-listen", "--insecure"] {
        assert!(stderr.contains(flag), "names {flag}: {stderr}");
    }
    let metrics_loopback = [&open[..], &["--metrics-listen", "127.0.0.1:0"]].concat();
    let (child, _) = start_until(
        consumer,
        &metrics_loopback,
        &secret_env,
        "consumer listening",
    );
    stop(child);
    // A secret too short is refused, without being shown.
    let (ok, stderr) = run_to_exit(consumer, &open, &[("RPC_SECRET", "hunter2")]);
    assert!(!ok && stderr.contains("at least 16"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the secret shown: {stderr}");

    // TLS secures it: it starts, and `call` with the CA (and only with it) gets an answer.
    let ca = Ca::new("consumers CA");
    let identity = ca.issue("consumer");
    let ca_pem = temp_file("ca.pem", &ca.pem());
    let cert = temp_file("cert.pem", &identity.cert);
    let key = temp_file("key.pem", &identity.key);
    let mut tls = open.to_vec();
    tls.extend([
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let (child, line) = start_until(consumer, &tls, &[], "consumer listening");
    let address = format!("127.0.0.1:{}", port_in(&line));
    let call = env!("CARGO_BIN_EXE_call");
    let fib = ["fibonacci_generator.calculate", "10"];
    let with_ca = [&["--tls-ca", ca_pem.to_str().unwrap(), &address][..], &fib].concat();
    let (ok, stderr) = run_to_exit(call, &with_ca, &[]);
    assert!(ok, "a TLS call with the CA: {stderr}");
    let (ok, _) = run_to_exit(
        call,
        &[&[address.as_str()][..], &fib, &["--timeout", "2"]].concat(),
        &[],
    );
    assert!(!ok, "a plain call to a TLS consumer is refused");
    stop(child);
    let missing = [
        &open[..],
        &[
            "--tls-cert",
            "/nonexistent.pem",
            "--tls-key",
            "/nonexistent.key",
        ],
    ]
    .concat();
    let (ok, stderr) = run_to_exit(consumer, &missing, &[]);
    assert!(
        !ok && stderr.contains("--tls-cert: cannot read"),
        "{stderr}"
    );

    // The front door with --insecure, and with API keys: both start.
    let (child, _) = start_until(
        producer,
        &["--listen", "0.0.0.0:0", "--insecure", "9"],
        &[],
        "HTTP listening",
    );
    stop(child);
    let keys = temp_file("protected-keys", &format!("{KEY_A}\n"));
    let (child, _) = start_until(
        producer,
        &[
            "--listen",
            "0.0.0.0:0",
            "--api-keys",
            keys.to_str().unwrap(),
            "9",
        ],
        &[],
        "HTTP listening",
    );
    stop(child);
    for file in [secret, ca_pem, cert, key, keys] {
        let _ = std::fs::remove_file(file);
    }
}

/// Posts `{"n": 10}` with `key` as bearer token (none when `None`).
async fn call(client: &Client, producer: &WebProducer, key: Option<&str>) -> (StatusCode, String) {
    let mut request = client.post(producer.at(FIB)).body(r#"{"n": 10}"#);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("answered");
    (response.status(), response.text().await.expect("a body"))
}

/// Asserts what each key's F(10) gets: the status given, and `55` with a 200.
async fn assert_keys(client: &Client, producer: &WebProducer, expected: &[(&str, StatusCode)]) {
    for &(key, status) in expected {
        let (got, body) = call(client, producer, Some(key)).await;
        assert_eq!(got, status, "key {key:?}: {body}");
        if status == StatusCode::OK {
            assert_eq!(body, "55", "key {key:?}");
        }
    }
}

async fn get(client: &Client, producer: &WebProducer, path: &str, key: Option<&str>) -> StatusCode {
    let mut request = client.get(producer.at(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("answered").status()
}

fn tcp_pair() -> (Consumer, Consumer) {
    let args = ["--transport", "tcp", "--no-model"];
    (Consumer::start(&args), Consumer::start(&args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_401_without_an_accepted_key_probes_open() {
    let (a, b) = tcp_pair();
    let keys = temp_file("keys-401", &format!("# two clients\n{KEY_A}\n{KEY_B}\n"));
    let producer = WebProducer::start(&[
        "--transport",
        "tcp",
        &a.port.to_string(),
        &b.port.to_string(),
        "--api-keys",
        keys.to_str().unwrap(),
    ]);
    let client = Client::new();
    for key in [None, Some("key-wrong-0000000000000000"), Some("")] {
        let response = {
            let mut request = client.post(producer.at(FIB)).body(r#"{"n": 10}"#);
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            request.send().await.expect("answered")
        };
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "key {key:?}");
        assert!(
            response.headers().contains_key("www-authenticate"),
            "a 401 says how to authenticate"
        );
        let body: Value = response.json().await.expect("the JSON error shape");
        assert_eq!(body["error"]["type"], "Unauthorized", "{body}");
    }
    // Basic authentication is not a bearer token.
    let basic = client
        .post(producer.at(FIB))
        .basic_auth("user", Some(KEY_A))
        .body(r#"{"n": 10}"#)
        .send()
        .await
        .expect("answered");
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);

    assert_keys(
        &client,
        &producer,
        &[(KEY_A, StatusCode::OK), (KEY_B, StatusCode::OK)],
    )
    .await;

    for open in ["/healthz", "/readyz", "/"] {
        assert_eq!(
            get(&client, &producer, open, None).await,
            StatusCode::OK,
            "{open}"
        );
    }
    for guarded in ["/metrics", "/v1/dashboard"] {
        assert_eq!(
            get(&client, &producer, guarded, None).await,
            StatusCode::UNAUTHORIZED,
            "{guarded}"
        );
        assert_eq!(
            get(&client, &producer, guarded, Some(KEY_A)).await,
            StatusCode::OK,
            "{guarded}"
        );
    }
    let _ = std::fs::remove_file(keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_keys_revoking_one_and_keeping_the_others() {
    let (a, b) = tcp_pair();
    let keys = temp_file("keys-reload", &format!("{KEY_A}\n{KEY_B}\n"));
    let mut producer = WebProducer::start(&[
        "--transport",
        "tcp",
        &a.port.to_string(),
        &b.port.to_string(),
        "--api-keys",
        keys.to_str().unwrap(),
    ]);
    let client = Client::new();
    let ok = StatusCode::OK;
    let unauthorized = StatusCode::UNAUTHORIZED;
    assert_keys(&client, &producer, &[(KEY_A, ok), (KEY_C, unauthorized)]).await;

    // A revoked, B kept, C added; the file replaced whole, as an editor or a deploy does.
    let next = temp_file("keys-reload.next", &format!("{KEY_B}\n{KEY_C}\n"));
    std::fs::rename(&next, &keys).expect("replace the key file");
    producer.signal("HUP");
    producer.wait_for("API keys reloaded", Duration::from_secs(10));
    let reloaded = [(KEY_A, unauthorized), (KEY_B, ok), (KEY_C, ok)];
    assert_keys(&client, &producer, &reloaded).await;

    // A file that cannot be used is not applied: the keys stay as they were.
    std::fs::write(&keys, "short\n").expect("spoil the key file");
    producer.signal("HUP");
    producer.wait_for("the keys loaded before are kept", Duration::from_secs(10));
    assert_keys(&client, &producer, &reloaded).await;
    assert!(
        producer.child.try_wait().expect("alive").is_none(),
        "SIGHUP did not stop it"
    );
    let _ = std::fs::remove_file(keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_key_in_logs_pages_or_metrics() {
    const SECRET: &str = "shared-secret-9d2f7a4c1e8b6035";
    const WRONG: &str = "key-wrong-guess-4b7e1c9a3d5f";
    let secret_file = temp_file("leak-secret", &format!("{SECRET}\n"));
    let secret_path = secret_file.to_str().unwrap().to_string();
    let keys = temp_file("leak-keys", &format!("{KEY_A}\n{KEY_B}\n"));
    let args = ["--transport", "tcp", "--no-model"];
    let env = [("RPC_SECRET_FILE", secret_path.as_str())];
    let mut a = Consumer::start_with_env(&args, 0, "debug", &env);
    let mut b = Consumer::start_with_env(&args, 0, "debug", &[("RPC_SECRET", SECRET)]);
    let mut producer = WebProducer::start_with_env(
        &[
            "--transport",
            "tcp",
            &a.port.to_string(),
            &b.port.to_string(),
            "--api-keys",
            keys.to_str().unwrap(),
        ],
        "debug",
        &[("RPC_SECRET", SECRET)],
    );
    let client = Client::new();
    let unauthorized = StatusCode::UNAUTHORIZED;
    let tries = [
        (KEY_A, StatusCode::OK),
        (WRONG, unauthorized),
        (SECRET, unauthorized),
    ];
    for _ in 0..20 {
        assert_keys(&client, &producer, &tries).await;
    }
    // Arguments that fail, so that error paths log too.
    let bad = client
        .post(producer.at(FIB))
        .bearer_auth(KEY_B)
        .body(r#"{"n": "ninety"}"#)
        .send()
        .await
        .expect("answered");
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let mut pages = String::new();
    for path in ["/", "/v1/dashboard", "/metrics", "/healthz", "/readyz"] {
        let response = client
            .get(producer.at(path))
            .bearer_auth(KEY_A)
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        pages.push_str(&response.text().await.expect("a body"));
    }
    assert!(
        pages.contains("rpc_http_responses_total"),
        "the metrics were read"
    );

    // Everything each process wrote, to its end.
    producer.signal("INT");
    let mut stdout = String::new();
    producer
        .child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read the producer's stdout");
    producer.wait_for("shutting down", Duration::from_secs(10));
    a.signal("INT");
    b.signal("INT");
    a.wait_exit(Duration::from_secs(10));
    b.wait_exit(Duration::from_secs(10));
    let logs = [
        ("producer", producer.log().join("\n") + &stdout),
        ("consumer a", a.log().join("\n")),
        ("consumer b", b.log().join("\n")),
        ("pages", pages),
    ];
    for (whose, text) in &logs {
        assert!(!text.is_empty(), "{whose} said something");
        for needle in [SECRET, KEY_A, KEY_B, WRONG, "9d2f7a4c", "7f3c9e21"] {
            assert!(
                !text.contains(needle),
                "{needle} appears in the {whose}: {text}"
            );
        }
    }
    assert!(
        logs[1].1.contains("RPC_SECRET_FILE"),
        "the source is named, not the secret"
    );
    for file in [secret_file, keys] {
        let _ = std::fs::remove_file(file);
    }
}
