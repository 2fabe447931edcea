//! TLS and the shared secret, with real sockets and certificates made at test time: each
//! refused client gets a clear error and runs nothing (its calls are tagged `intruder` and
//! counted), while well-behaved clients of the same consumer keep being served; no secret or
//! key reaches a log, a `Debug` output or an error.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{read_to_close, Consumer};
use rpc_core::encoding::to_bincode;
use rpc_core::{Call, Client, Encoding, Request, RpcError};
use test_support::pki::{Ca, Identity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use transport_tcp::{
    ClientTls, ServerTls, SharedSecret, TcpServerConfig, TcpTransport, TcpTransportConfig,
};

/// The secret of the tests' consumers; it must never appear in a log, a `Debug` or an error.
const SECRET: &str = "7f1c2a9e-the-consumers-secret-b41d";
/// A secret of the same length that is not it.
const WRONG: &str = "0000000000-not-the-secret-00000000";

/// `Hello`, protocol 4, replies up to 16 MiB.
const HELLO: [u8; 16] = [0, 0, 0, 12, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 1];

/// Everything this test binary logs, at debug level, from every thread.
fn logs() -> String {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let buffer = LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .init();
        buffer
    });
    let bytes = buffer.lock().unwrap_or_else(|e| e.into_inner()).clone();
    String::from_utf8_lossy(&bytes).into_owned()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut logs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        logs.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A directory of its own for one test's PEM files, removed at the end.
struct Files(PathBuf);

impl Files {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rpc-tls-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        Self(dir)
    }

    fn write(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, pem).expect("a PEM file");
        path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn secret(text: &str) -> SharedSecret {
    SharedSecret::new(text).expect("a long enough secret")
}

/// A consumer with quick handshake limits and `tls`/`secret`.
fn consumer(tls: Option<ServerTls>, secret: Option<SharedSecret>) -> Consumer {
    let mut config = TcpServerConfig::default();
    config.handshake_timeout = Duration::from_secs(1);
    config.tls = tls;
    config.secret = secret;
    Consumer::start("127.0.0.1:0", 2, config)
}

fn server_tls(identity: &Identity) -> ServerTls {
    ServerTls::from_pem(identity.cert.as_bytes(), identity.key.as_bytes()).expect("server TLS")
}

fn client_tls(ca: &Ca, identity: Option<&Identity>) -> ClientTls {
    let tls = ClientTls::from_ca_pem(ca.pem().as_bytes(), "the consumers' CA").expect("CA");
    match identity {
        Some(id) => tls
            .with_certificate_pem(id.cert.as_bytes(), id.key.as_bytes())
            .expect("a client certificate"),
        None => tls,
    }
}

/// A pool's settings with quick probing.
fn pool_config(tls: Option<ClientTls>, secret: Option<SharedSecret>) -> TcpTransportConfig {
    let mut config = TcpTransportConfig::default();
    config.backoff_max = Duration::from_millis(300);
    config.no_consumer_wait = Duration::from_millis(1500);
    config.tls = tls;
    config.secret = secret;
    config
}

/// A call from a pool the consumer refuses: it must fail with `NoConsumer`, whose message
/// (the reason the pool keeps for the consumer) is returned.
async fn refused(addr: SocketAddr, config: TcpTransportConfig) -> String {
    let pool = TcpTransport::new([addr.to_string()], config).expect("a pool");
    let client = Client::new(pool.clone()).with_timeout(Duration::from_secs(10));
    let result: Result<String, RpcError> = client.call("work.slow", &("intruder", 1u64)).await;
    let message = match result {
        Err(RpcError::NoConsumer(message)) => message,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let status = pool.consumers().remove(0);
    assert!(!status.up, "{status:?}");
    assert!(
        !message.contains(SECRET) && !message.contains(WRONG),
        "{message}"
    );
    message
}

/// Well-behaved calls made side by side with the refusals, until stopped.
struct GoodTraffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl GoodTraffic {
    async fn start(addr: SocketAddr, config: TcpTransportConfig) -> Self {
        let pool = TcpTransport::new([addr.to_string()], config).expect("a pool");
        let client = Client::new(pool).with_timeout(Duration::from_secs(10));
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (stop, ok) = (stop.clone(), ok.clone());
            async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let tag = format!("good{i}");
                    let result: Result<String, RpcError> =
                        client.call("work.slow", &(tag.as_str(), 1u64)).await;
                    assert_eq!(result.as_deref(), Ok(tag.as_str()), "a good client failed");
                    ok.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        let traffic = Self { stop, ok, task };
        common::eventually(Duration::from_secs(10), "good calls flow", || {
            traffic.ok.load(Ordering::Relaxed) > 0
        })
        .await;
        traffic
    }

    /// Stops, checks that every call succeeded, and returns how many there were.
    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("no good call failed");
        self.ok.load(Ordering::Relaxed)
    }
}

/// Sends `bytes` on a new connection and returns all the consumer answers before closing.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("send");
    read_to_close(&mut stream).await
}

/// A `Request` frame for `work.slow("intruder", 1)`.
fn intruding_request() -> Vec<u8> {
    let args = to_bincode(&("intruder", 1u64)).expect("arguments");
    let call =
        Call::new("work.slow", Encoding::Bincode, args).with_timeout(Duration::from_secs(30));
    let body = to_bincode(&(1u32, Request { id: 1, call })).expect("a request");
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// The key's base64 lines, which must appear nowhere.
fn key_lines(identity: &Identity) -> Vec<String> {
    let lines = identity
        .key
        .lines()
        .filter(|line| !line.starts_with("-----"));
    lines.map(str::to_string).collect()
}

fn assert_contains(message: &str, expected: &str) {
    assert!(message.contains(expected), "{message:?} lacks {expected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_each_bad_client_and_serves_good_ones_meanwhile() {
    logs();
    let files = Files::new("mutual");
    let consumers_ca = Ca::new("consumers");
    let producers_ca = Ca::new("producers");
    let other_ca = Ca::new("someone else");
    let server_id = consumers_ca.issue("consumer");
    // The consumer's TLS from files, as the apps load it.
    let tls = ServerTls::from_pem_files(
        files.write("consumer.crt", &server_id.cert),
        files.write("consumer.key", &server_id.key),
    )
    .expect("server TLS from files")
    .require_client_certificates(files.write("producers-ca.crt", &producers_ca.pem()))
    .expect("the producers' CA");
    let consumer = consumer(Some(tls), None);
    let addr = consumer.addr;
    let producer_id = producers_ca.issue("producer");
    let good = client_tls(&consumers_ca, Some(&producer_id));
    let traffic = GoodTraffic::start(addr, pool_config(Some(good), None)).await;

    let no_certificate = client_tls(&consumers_ca, None);
    let message = refused(addr, pool_config(Some(no_certificate), None)).await;
    assert_contains(&message, "requires a client certificate");

    let foreign_id = other_ca.issue("producer");
    let foreign = client_tls(&consumers_ca, Some(&foreign_id));
    let message = refused(addr, pool_config(Some(foreign), None)).await;
    assert_contains(&message, "refused this producer's certificate");

    let expired_id = producers_ca.issue_expired("producer");
    let expired = client_tls(&consumers_ca, Some(&expired_id));
    let message = refused(addr, pool_config(Some(expired), None)).await;
    assert_contains(&message, "certificate: it has expired");

    // The producer checks the consumer too: trusting another CA, it refuses this one.
    let distrustful = client_tls(&other_ca, Some(&producer_id));
    let message = refused(addr, pool_config(Some(distrustful), None)).await;
    assert_contains(&message, "not signed by the CA this producer trusts");

    let message = refused(addr, pool_config(None, None)).await;
    assert_contains(&message, "this consumer requires TLS");

    // A text client on the TLS port; then garbage inside a TLS handshake record.
    let answer = raw(addr, b"work slow intruder 1\n").await;
    assert_eq!(
        String::from_utf8_lossy(&answer),
        "ERROR Protocol: this consumer requires TLS (TcpTransportConfig::tls)\n"
    );
    let mut garbage = vec![0x16, 0x03, 0x01, 0x00, 0x40];
    garbage.extend((0..64u8).map(|i| i.wrapping_mul(37)));
    let answer = raw(addr, &garbage).await;
    assert!(answer.len() < 16, "a TLS alert at most: {answer:?}");

    let served = traffic.finish().await;
    assert!(served > 0);
    assert_eq!(
        consumer.runs.of("intruder"),
        0,
        "a refused client ran a call"
    );
    let logs = logs();
    assert_contains(&logs, "TLS handshake failed: client refused");
    for line in key_lines(&server_id).iter().chain(&key_lines(&producer_id)) {
        assert!(!logs.contains(line.as_str()), "a private key in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_consumer_certificate_is_refused_by_the_pool() {
    logs();
    let ca = Ca::new("consumers");
    let consumer = consumer(Some(server_tls(&ca.issue_expired("consumer"))), None);
    let message = refused(
        consumer.addr,
        pool_config(Some(client_tls(&ca, None)), None),
    )
    .await;
    assert_contains(&message, "the consumer's certificate has expired");
    assert_eq!(consumer.runs.of("intruder"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_on_a_plain_consumer_gets_a_clear_error() {
    logs();
    let ca = Ca::new("consumers");
    let consumer = consumer(None, None);
    let traffic = GoodTraffic::start(consumer.addr, pool_config(None, None)).await;
    let message = refused(
        consumer.addr,
        pool_config(Some(client_tls(&ca, None)), None),
    )
    .await;
    assert_contains(
        &message,
        "did not answer in TLS: is it a plain TCP consumer?",
    );
    assert!(traffic.finish().await > 0);
    assert_eq!(consumer.runs.of("intruder"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_secret_refuses_wrong_and_missing_secrets_and_unproven_calls() {
    logs();
    let consumer = consumer(None, Some(secret(SECRET)));
    let addr = consumer.addr;
    let traffic = GoodTraffic::start(addr, pool_config(None, Some(secret(SECRET)))).await;

    let message = refused(addr, pool_config(None, Some(secret(WRONG)))).await;
    assert_contains(
        &message,
        "authentication failed: the producer's proof does not match this consumer's shared secret",
    );
    let message = refused(addr, pool_config(None, None)).await;
    assert_contains(
        &message,
        "the consumer requires a shared secret and this producer has none",
    );

    // By hand: a hello, then a call without a proof; then a hello and garbage.
    let answer = raw(addr, &[&HELLO[..], &intruding_request()].concat()).await;
    let answer = String::from_utf8_lossy(&answer);
    assert_contains(&answer, "authentication required");
    let answer = raw(addr, &[&HELLO[..], &[0, 0, 0, 3, 9, 9, 9]].concat()).await;
    assert_contains(&String::from_utf8_lossy(&answer), "undecodable");
    // A text client: refused unread.
    let answer = raw(addr, b"work slow intruder 1\n").await;
    assert_eq!(
        String::from_utf8_lossy(&answer),
        "ERROR Protocol: this consumer requires authentication: text commands are refused (use a producer with the shared secret)\n"
    );
    // A client that says hello and never proves anything is dropped after the handshake
    // timeout (1 s here, checked every second).
    let started = std::time::Instant::now();
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    silent.write_all(&HELLO).await.expect("hello");
    let challenge = read_to_close(&mut silent).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        challenge.len(),
        4 + 4 + 32,
        "the challenge only: {challenge:?}"
    );

    assert!(traffic.finish().await > 0);
    assert_eq!(
        consumer.runs.of("intruder"),
        0,
        "a refused client ran a call"
    );
    let logs = logs();
    assert_contains(&logs, "producer refused");
    assert_contains(&logs, "does not match this consumer's shared secret");
    assert_contains(&logs, "refused: a client sent calls without authenticating");
    assert!(
        !logs.contains(SECRET) && !logs.contains(WRONG),
        "a secret in the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_with_a_secret_refuses_a_consumer_without_one() {
    logs();
    let consumer = consumer(None, None);
    let message = refused(consumer.addr, pool_config(None, Some(secret(SECRET)))).await;
    assert_contains(&message, "the consumer did not authenticate");
    assert_eq!(consumer.runs.of("intruder"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_the_secret_together_and_text_where_allowed() {
    logs();
    let ca = Ca::new("consumers");
    let mut config = TcpServerConfig::default();
    config.tls = Some(server_tls(&ca.issue("consumer")));
    config.secret = Some(secret(SECRET));
    config.allow_text_without_secret = true;
    let consumer = Consumer::start("127.0.0.1:0", 2, config);
    let tls = client_tls(&ca, None);
    let traffic = GoodTraffic::start(
        consumer.addr,
        pool_config(Some(tls.clone()), Some(secret(SECRET))),
    )
    .await;
    let message = refused(consumer.addr, pool_config(Some(tls), Some(secret(WRONG)))).await;
    assert_contains(&message, "does not match this consumer's shared secret");
    assert!(traffic.finish().await > 0);
    assert_eq!(consumer.runs.of("intruder"), 0);

    // Text commands are allowed here, in plain text only over TLS.
    let answer = raw(consumer.addr, b"work echo hi\n").await;
    assert_contains(&String::from_utf8_lossy(&answer), "requires TLS");
    let plain = consumer_with_text(true);
    assert_eq!(raw(plain.addr, b"work echo hi\n").await, b"hi\n");
    let strict = consumer_with_text(false);
    assert_contains(
        &String::from_utf8_lossy(&raw(strict.addr, b"work echo hi\n").await),
        "requires authentication",
    );
}

/// A plain consumer with a secret, serving text commands or not.
fn consumer_with_text(allowed: bool) -> Consumer {
    let mut config = TcpServerConfig::default();
    config.secret = Some(secret(SECRET));
    config.allow_text_without_secret = allowed;
    Consumer::start("127.0.0.1:0", 1, config)
}

#[test]
fn no_secret_or_key_in_debug_output_or_errors() {
    let ca = Ca::new("consumers");
    let id = ca.issue("consumer");
    let mut server = TcpServerConfig::default();
    server.tls = Some(
        server_tls(&id)
            .require_client_certificates_pem(ca.pem().as_bytes(), "CA")
            .expect("mTLS"),
    );
    server.secret = Some(secret(SECRET));
    let mut client = TcpTransportConfig::default();
    client.tls = Some(client_tls(&ca, Some(&id)));
    client.secret = Some(secret(SECRET));
    let debug = format!("{server:?} {client:?} {:?}", secret(SECRET));
    assert_contains(&debug, "SharedSecret(<redacted>)");
    assert_contains(&debug, "client_certificates_required: true");
    assert!(!debug.contains(SECRET), "{debug}");
    for line in key_lines(&id) {
        assert!(!debug.contains(&line), "{debug}");
    }
    // A secret too short, and files that are missing or hold no key: named, never shown.
    let short = SharedSecret::new("tiny secret")
        .expect_err("too short")
        .to_string();
    assert_eq!(
        short,
        "the shared secret has 11 bytes; at least 16 are required"
    );
    let files = Files::new("errors");
    let secret_file = files.write("secret", "tiny secret\n");
    let error = SharedSecret::from_file(&secret_file)
        .expect_err("too short")
        .to_string();
    assert!(!error.contains("tiny"), "{error}");
    let cert = files.write("c.crt", &id.cert);
    let error = ServerTls::from_pem_files(&cert, &cert)
        .expect_err("no key")
        .to_string();
    assert_contains(&error, "no usable private key in");
    let error = ServerTls::from_pem_files(files.0.join("missing.crt"), &cert)
        .expect_err("no file")
        .to_string();
    assert_contains(&error, "cannot read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_commands_inside_tls_are_served() {
    use tokio_rustls::rustls::{self, pki_types::ServerName, ClientConfig, RootCertStore};
    logs();
    let ca = Ca::new("consumers");
    let consumer = consumer(Some(server_tls(&ca.issue("consumer"))), None);
    // A TLS client of its own, as `openssl s_client` would be: rustls, trusting the CA.
    let mut roots = RootCertStore::empty();
    let ca_der = rustls::pki_types::CertificateDer::from_pem_slice(ca.pem().as_bytes());
    roots.add(ca_der.expect("the CA")).expect("a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(consumer.addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("a name");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = connector
        .connect(name, tcp)
        .await
        .expect("the TLS handshake");
    tls.write_all(b"work echo over-tls\n")
        .await
        .expect("a command");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    assert_eq!(String::from_utf8_lossy(&answer), "over-tls\n");
}
