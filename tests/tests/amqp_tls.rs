//! The conformance suite against the AMQP transport over TLS, on a real TLS-only RabbitMQ node
//! with a private CA (`scripts/rabbitmq_tls.sh`, started here when it does not run yet:
//! certificates made with openssl, client certificates required). Then the refusals: a
//! broker certificate from another CA, a plain client on the TLS port, a client certificate
//! from another CA or none: each a clear error, and nothing runs. The `EXTERNAL` login (the
//! user from the client certificate, no password), and no secret in `Debug` output, errors or
//! logs.
//!
//! Without the script's prerequisites (root, Debian's RabbitMQ, openssl) every test fails
//! loudly: nothing is skipped.

mod amqp_fixture;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rpc_core::{Client, Registry, RpcError};
use transport_amqp::{delete_request_queues, AmqpConfig, AmqpServer, AmqpTls, AmqpTransport};

/// The TLS node, started once for this test binary.
struct Broker {
    /// `amqps://guest:guest@127.0.0.1:5691/%2f`.
    url: String,
    /// The certificates the script made.
    certs: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .join("scripts/rabbitmq_tls.sh")
}

fn run_script(arg: &str) -> String {
    test_support::stdout_of(Command::new(script()).arg(arg))
}

fn broker() -> &'static Broker {
    static BROKER: OnceLock<Broker> = OnceLock::new();
    BROKER.get_or_init(|| {
        run_script("start");
        Broker {
            url: run_script("url"),
            certs: PathBuf::from(run_script("dir")),
        }
    })
}

impl Broker {
    fn cert(&self, name: &str) -> PathBuf {
        self.certs.join(name)
    }

    /// The TLS settings of a well-behaved peer: the private CA, the client certificate.
    fn tls(&self) -> AmqpTls {
        AmqpTls::default()
            .with_ca_file(self.cert("ca.pem"))
            .with_client_identity(self.cert("client.pem"), self.cert("client.key"))
    }

    fn config(&self) -> AmqpConfig {
        AmqpConfig::new(self.url.as_str()).with_tls(self.tls())
    }
}

/// The TLS node, with the private CA and the client certificate.
struct TlsBroker;

impl amqp_fixture::Broker for TlsBroker {
    fn config() -> AmqpConfig {
        broker().config()
    }

    const HOW_TO_START: &'static str = "scripts/rabbitmq_tls.sh";
}

rpc_tests::conformance_suite!(amqp_fixture::AmqpFixture<TlsBroker>);

/// Counts its runs.
struct Counter {
    runs: AtomicU64,
}

#[rpc_core::handler]
impl Counter {
    /// How many times it ran, this run included.
    pub fn count(&self) -> u64 {
        self.runs.fetch_add(1, Ordering::SeqCst) + 1
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A password no broker has: it must never show up anywhere.
const SECRET_PASSWORD: &str = "s3cret-pw-7f3a";

/// Each refusal: a clear `Io` error naming the broker without its password, nothing runs,
/// and a well-behaved client is served meanwhile. The URL's password is the right one, so
/// that only TLS can refuse.
#[test]
fn refusals_are_clear_errors_and_nothing_runs() {
    let broker = broker();
    runtime().block_on(async {
        let name = rpc_tests::procedures::unique_name("tls_refusals");
        let mut registry = Registry::new();
        registry.register_as(
            name.clone(),
            Counter {
                runs: AtomicU64::new(0),
            },
        );
        let server = AmqpServer::start(broker.config(), Arc::new(registry))
            .await
            .expect("a consumer over TLS");
        let procedure = format!("{name}.count");
        // The right password: only TLS may refuse these.
        let url = broker.url.clone();
        let plain_url = url.replace("amqps://", "amqp://");
        let cases: Vec<(&str, AmqpConfig)> = vec![
            (
                "a broker certificate from another CA",
                AmqpConfig::new(url.as_str()).with_tls(
                    AmqpTls::default()
                        .with_ca_file(broker.cert("other-ca.pem"))
                        .with_client_identity(broker.cert("client.pem"), broker.cert("client.key")),
                ),
            ),
            (
                "a plain client on the TLS port",
                AmqpConfig::new(plain_url.as_str()).with_tls(broker.tls()),
            ),
            (
                "a client certificate from another CA",
                AmqpConfig::new(url.as_str()).with_tls(
                    AmqpTls::default()
                        .with_ca_file(broker.cert("ca.pem"))
                        .with_client_identity(
                            broker.cert("other-client.pem"),
                            broker.cert("other-client.key"),
                        ),
                ),
            ),
            (
                "no client certificate",
                AmqpConfig::new(url.as_str())
                    .with_tls(AmqpTls::default().with_ca_file(broker.cert("ca.pem"))),
            ),
        ];
        let key = std::fs::read_to_string(broker.cert("client.key")).expect("the client key");
        let key_line = key.lines().nth(1).expect("a line of key material");
        for (what, config) in cases {
            let connected = tokio::time::timeout(
                Duration::from_secs(20),
                AmqpTransport::connect(config.clone()),
            )
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer in 20 s"));
            let err = connected.expect_err(what);
            println!("{what}: {err}");
            assert!(matches!(err, RpcError::Io(_)), "{what}: {err:?}");
            let message = err.to_string();
            assert!(
                message.contains("127.0.0.1:5691"),
                "{what}: names the broker: {message}"
            );
            for secret in ["guest:guest", key_line] {
                assert!(!message.contains(secret), "{what}: a secret in {message}");
            }
            // A consumer is refused the same way.
            let serving = tokio::time::timeout(
                Duration::from_secs(20),
                AmqpServer::start(config, Arc::new(Registry::new())),
            )
            .await
            .unwrap_or_else(|_| panic!("{what}: the consumer got no answer in 20 s"));
            assert!(serving.is_err(), "{what}: a consumer started");
        }
        // Nothing ran; the well-behaved client is served (its call is the first run).
        let client = Client::new(
            AmqpTransport::connect(broker.config())
                .await
                .expect("a well-behaved client"),
        )
        .with_timeout(Duration::from_secs(10));
        assert_eq!(client.call::<_, u64>(&procedure, &()).await, Ok(1));
        server.shutdown().await;
        delete_request_queues(&broker.config(), &[procedure])
            .await
            .expect("delete the queue");
    });
}

/// `rabbitmqctl -n rpc-tls@<host> list_connections user auth_mechanism ssl` as JSON rows.
fn tls_connections() -> Vec<serde_json::Value> {
    let host = test_support::stdout_of(Command::new("hostname").arg("-s"));
    let node = format!("rpc-tls@{host}");
    test_support::rabbitmq::rabbitmqctl_json(&[
        "-n",
        &node,
        "list_connections",
        "user",
        "auth_mechanism",
        "ssl",
    ])
}

/// SASL `EXTERNAL`: no user nor password in the URL; the broker takes the user from the
/// client certificate's common name, as it says itself.
#[test]
fn external_login_takes_the_user_from_the_client_certificate() {
    let broker = broker();
    runtime().block_on(async {
        let name = rpc_tests::procedures::unique_name("tls_external");
        let url = "amqps://127.0.0.1:5691/%2f";
        let tls = broker.tls().with_external_auth(true);
        let config = AmqpConfig::new(url)
            .with_tls(tls)
            .with_connection_name(name.clone());
        let mut registry = Registry::new();
        registry.register_as(
            name.clone(),
            Counter {
                runs: AtomicU64::new(0),
            },
        );
        let server = AmqpServer::start(config.clone(), Arc::new(registry))
            .await
            .expect("a consumer logged in with EXTERNAL");
        let client = Client::new(
            AmqpTransport::connect(config.clone())
                .await
                .expect("a client logged in with EXTERNAL"),
        );
        let procedure = format!("{name}.count");
        assert_eq!(client.call::<_, u64>(&procedure, &()).await, Ok(1));
        let external: Vec<_> = tls_connections()
            .into_iter()
            .filter(|c| c["auth_mechanism"] == "EXTERNAL")
            .collect();
        println!("EXTERNAL connections: {external:?}");
        assert!(
            external.len() >= 2
                && external
                    .iter()
                    .all(|c| c["user"] == "rpc-tls-client" && c["ssl"] == true),
            "the consumer and the client, as rpc-tls-client over TLS: {external:?}"
        );
        server.shutdown().await;
        delete_request_queues(&config, &[procedure])
            .await
            .expect("delete the queue");
    });
}

/// Everything written to the log, by every thread, once [`capture_logs`] ran.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The password and key of a client are in no `Debug` output, error or log line (ours at
/// every level, lapin's at debug), through a successful call, a failed login, a refused
/// handshake and reconnection attempts.
#[test]
fn secrets_never_leak() {
    tracing_subscriber::fmt()
        .with_env_filter("transport_amqp=trace,rpc_core=trace,lapin=debug,amq_protocol=debug")
        .with_writer(|| LogWriter)
        .with_ansi(false)
        .init();
    let broker = broker();
    let key = std::fs::read_to_string(broker.cert("client.key")).expect("the client key");
    let secret_url = broker
        .url
        .replace("guest:guest", &format!("guest:{SECRET_PASSWORD}"));
    let mut seen = Vec::new();
    runtime().block_on(async {
        // A good connection and a call, then the same with a wrong password (refused at
        // login), then a refused handshake (another CA), each shown as a user would.
        let good = broker.config().with_connection_name("secrets".to_string());
        seen.push(format!("{good:?}"));
        let name = rpc_tests::procedures::unique_name("tls_secrets");
        let mut registry = Registry::new();
        registry.register_as(
            name.clone(),
            Counter {
                runs: AtomicU64::new(0),
            },
        );
        let server = AmqpServer::start(good.clone(), Arc::new(registry))
            .await
            .expect("a consumer over TLS");
        let transport = AmqpTransport::connect(good.clone())
            .await
            .expect("a client");
        seen.push(format!("{transport:?}"));
        let procedure = format!("{name}.count");
        let client = Client::new(transport);
        assert_eq!(client.call::<_, u64>(&procedure, &()).await, Ok(1));

        let wrong_password = AmqpConfig::new(secret_url.as_str()).with_tls(broker.tls());
        seen.push(format!("{wrong_password:?}"));
        let err = AmqpTransport::connect(wrong_password)
            .await
            .expect_err("a wrong password");
        seen.push(err.to_string());
        seen.push(format!("{err:?}"));
        let other_ca = AmqpConfig::new(secret_url.as_str()).with_tls(
            AmqpTls::default()
                .with_ca_file(broker.cert("other-ca.pem"))
                .with_client_identity(broker.cert("client.pem"), broker.cert("client.key")),
        );
        let err = AmqpTransport::connect(other_ca)
            .await
            .expect_err("a certificate from another CA");
        seen.push(err.to_string());
        // Reconnection attempts log their failures: a consumer on a URL that is refused.
        let failing = AmqpConfig::new(format!(
            "{secret_url},amqps://guest:{SECRET_PASSWORD}@127.0.0.1:1/%2f"
        ))
        .with_tls(broker.tls())
        .with_reconnect_delays(Duration::from_millis(10), Duration::from_millis(50));
        let shutdown = tokio_util::sync::CancellationToken::new();
        let serving = tokio::spawn(transport_amqp::serve(
            failing,
            Arc::new(Registry::new()),
            shutdown.clone(),
        ));
        let refused = serving.await.expect("the consumer's task");
        seen.push(format!("{refused:?}"));

        server.shutdown().await;
        delete_request_queues(&good, &[procedure])
            .await
            .expect("delete the queue");
    });
    let logs =
        String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert!(
        logs.contains("AMQP client connected"),
        "the log was captured: {logs}"
    );
    seen.push(logs);
    let key_lines: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(key_lines.len() > 5, "a real key");
    for text in &seen {
        assert!(!text.contains(SECRET_PASSWORD), "the password in: {text}");
        assert!(!text.contains("guest:guest"), "a password in: {text}");
        for line in &key_lines {
            assert!(!text.contains(line), "key material in: {text}");
        }
    }
    println!(
        "{} texts and {} bytes of log checked",
        seen.len(),
        seen.last().map_or(0, String::len)
    );
}
