//! Interoperability with the real Python library: aio-pika 9.6's `JsonRPC` calling a Rust
//! consumer, and a Rust client calling a procedure a `JsonRPC` server registered.
//!
//! Each in both topologies: quorum (the Python server passes the matching queue arguments to
//! `register`) and classic (aio-pika's defaults).
//!
//! `scripts/python_venv.sh` (run from here; idempotent) provides `<repo>/.venv` with aio-pika.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rpc_core::{Call, Client, Encoding, Registry, RpcError};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use transport_amqp::{AmqpServer, AmqpTransport, Topology};

use support::python_venv::python;
use support::{config, declare_request_queue, delete_queues, raw_channel, unique};

/// The procedures the Python client calls.
struct Suite;

#[rpc_core::handler]
impl Suite {
    /// Adds two numbers.
    pub fn add(a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    /// Returns its argument.
    pub fn echo(text: String) -> String {
        text
    }

    /// Fails with `message`.
    pub fn fail(message: String) -> Result<(), String> {
        Err(message)
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

#[test]
fn python_json_rpc_client_calls_a_rust_consumer_quorum() {
    python_client_calls_rust(Topology::Quorum);
}

#[test]
fn python_json_rpc_client_calls_a_rust_consumer_classic() {
    python_client_calls_rust(Topology::Classic);
}

#[test]
fn rust_client_calls_a_python_json_rpc_server_quorum() {
    rust_client_calls_python(Topology::Quorum);
}

#[test]
fn rust_client_calls_a_python_json_rpc_server_classic() {
    rust_client_calls_python(Topology::Classic);
}

fn python_client_calls_rust(topology: Topology) {
    let python = python();
    let config = config().with_topology(topology);
    test_support::runtime(2).block_on(async {
        let handler = unique("py_client");
        let mut registry = Registry::new();
        registry.register_as(handler.clone(), Suite);
        let server = AmqpServer::start(config.clone(), Arc::new(registry))
            .await
            .expect("a consumer on the broker (scripts/start_rabbitmq.sh)");
        let output = tokio::process::Command::new(&python)
            .arg(script("client.py"))
            .arg(config.url.as_str())
            .arg(&handler)
            .output()
            .await
            .expect("client.py runs");
        server.shutdown().await;
        assert!(
            output.status.success(),
            "client.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_json::from_slice(&output.stdout).expect("client.py's report");
        assert_eq!(report["add"], json!({"result": 42}));
        assert_eq!(report["exact"], json!({"result": 9007199254740993u64}));
        assert_eq!(report["echo"], json!({"result": "héllo \"wörld\""}));
        assert_eq!(
            report["fail"],
            json!({"exception": "JsonRPCError", "payload": {"error": {
                "type": "Failed", "message": "disk full", "args": ["disk full"]}}})
        );
        assert_eq!(report["bad"]["exception"], "JsonRPCError");
        assert_eq!(report["bad"]["payload"]["error"]["type"], "BadArguments");
        let message = report["bad"]["payload"]["error"]["message"]
            .as_str()
            .unwrap_or("");
        assert!(message.contains("`a`"), "{message}");
        delete_queues(&handler, &["add", "echo", "fail"]).await;
    });
}

fn rust_client_calls_python(topology: Topology) {
    let python = python();
    let config = config().with_topology(topology);
    test_support::runtime(2).block_on(async {
        let handler = unique("py_server");
        let mut server = tokio::process::Command::new(&python)
            .arg(script("server.py"))
            .arg(config.url.as_str())
            .arg(&handler)
            .arg(topology.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("server.py starts");
        let mut lines = BufReader::new(server.stdout.take().expect("stdout")).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
        assert!(
            matches!(&ready, Ok(Ok(Some(line))) if line == "READY"),
            "server.py not ready: {ready:?}"
        );

        // Same queue flags and arguments as aio-pika, or the broker would refuse (406).
        let (_connection, channel) = raw_channel().await;
        // (tests/topology.rs checks that ours are the documented ones.)
        declare_request_queue(&channel, &format!("{handler}.multiply"), config.topology).await;

        let transport = AmqpTransport::connect(config).await.expect("a client");
        let client = Client::new(transport).with_timeout(Duration::from_secs(10));
        let call = |method: &str, body: &str| {
            Call::new(
                format!("{handler}.{method}"),
                Encoding::Json,
                body.as_bytes().to_vec(),
            )
        };
        let product = client.send(call("multiply", r#"{"x": 6, "y": 7}"#)).await;
        assert_eq!(product.as_deref(), Ok(&b"42"[..]));
        let exact = client
            .send(call("multiply", r#"{"x": 3000000000, "y": 3000000000}"#))
            .await;
        assert_eq!(exact.as_deref(), Ok(&b"9000000000000000000"[..]));
        let boom = client.send(call("boom", r#"{"message": "no luck"}"#)).await;
        assert_eq!(boom, Err(RpcError::Failed("ValueError: no luck".into())));

        drop(server.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(10), server.wait()).await;
        delete_queues(&handler, &["multiply", "boom"]).await;
    });
}
