//! The apps over AMQP with TLS and a private CA, as real processes: a `consumer` and a `call`
//! on the TLS-only broker node of `scripts/rabbitmq_tls.sh` (started here when it does not run
//! yet; client certificates required), given the CA and the client certificate by the
//! `--amqp-*` flags, then by the `RPC_AMQP_*` environment with SASL `EXTERNAL` (no password).
//! A `call` without the CA is refused, naming the reason. The front door over the same broker
//! is ready (its probe of the consumers connects with the same TLS settings) and answers.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::web::WebProducer;
use support::Consumer;

fn script(arg: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/rabbitmq_tls.sh");
    test_support::stdout_of(Command::new(&script).arg(arg))
}

/// Runs `call` with `args` and `env`: whether it succeeded, its stdout and its stderr.
fn call(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_call"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run call");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    eprintln!("[call] {stderr}");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
        stderr,
    )
}

#[test]
fn consumer_and_call_use_the_private_ca_and_client_certificate() {
    script("start");
    let url = script("url");
    let certs = PathBuf::from(script("dir"));
    let file = |name: &str| certs.join(name).to_string_lossy().into_owned();
    let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key"));
    let tls_flags = [
        "--amqp-ca-file",
        ca.as_str(),
        "--amqp-client-cert",
        cert.as_str(),
        "--amqp-client-key",
        key.as_str(),
    ];

    let consumer_args = [
        &[
            "--transport",
            "amqp",
            "--no-model",
            "--amqp-url",
            url.as_str(),
        ][..],
        &tls_flags,
    ]
    .concat();
    let consumer = Consumer::start(&consumer_args);

    let fib = ["fibonacci_generator.calculate", "90"];
    let (ok, stdout, stderr) = call(
        &[
            &["--transport", "amqp", "--amqp-url", url.as_str()][..],
            &tls_flags,
            &fib,
        ]
        .concat(),
        &[],
    );
    assert!(
        ok,
        "a call with the CA and the client certificate: {stderr}"
    );
    assert_eq!(stdout, "2880067194370816120");

    // The same from the environment, logging in with EXTERNAL: no password anywhere.
    let env = [
        ("RPC_AMQP_CA_FILE", ca.as_str()),
        ("RPC_AMQP_CLIENT_CERT", cert.as_str()),
        ("RPC_AMQP_CLIENT_KEY", key.as_str()),
        ("RPC_AMQP_EXTERNAL_AUTH", "true"),
    ];
    let external_url = "amqps://127.0.0.1:5691/%2f";
    let (ok, stdout, stderr) = call(
        &[
            &["--transport", "amqp", "--amqp-url", external_url][..],
            &fib,
        ]
        .concat(),
        &env,
    );
    assert!(ok, "a call logged in with EXTERNAL: {stderr}");
    assert_eq!(stdout, "2880067194370816120");

    // The front door: its readiness probe asks the broker over TLS too.
    let producer_args = [
        &["--transport", "amqp", "--amqp-url", url.as_str()][..],
        &tls_flags,
    ]
    .concat();
    let producer = WebProducer::start(&producer_args);
    let runtime = test_support::current_thread_runtime();
    let (ready, answer) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let ready = client
            .get(format!("{}/readyz", producer.url))
            .send()
            .await
            .expect("GET /readyz");
        let ready = (
            ready.status().as_u16(),
            ready.text().await.unwrap_or_default(),
        );
        let answer = client
            .post(format!(
                "{}/v1/call/fibonacci_generator.calculate",
                producer.url
            ))
            .body(r#"{"n": 90}"#)
            .send()
            .await
            .expect("POST a call");
        let answer = (
            answer.status().as_u16(),
            answer.text().await.unwrap_or_default(),
        );
        (ready, answer)
    });
    assert_eq!(ready.0, 200, "/readyz over amqps: {}", ready.1);
    assert_eq!(answer, (200, "2880067194370816120".to_string()));
    drop(producer);

    // Without the CA, the broker's certificate is not trusted: refused, saying why.
    let (ok, _, stderr) = call(
        &[
            &["--transport", "amqp", "--amqp-url", url.as_str()][..],
            &tls_flags[2..],
            &fib,
        ]
        .concat(),
        &[],
    );
    assert!(!ok, "a call that does not trust the private CA succeeded");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    assert!(
        !stderr.contains("guest:guest"),
        "the password leaked: {stderr}"
    );
    drop(consumer);
}
