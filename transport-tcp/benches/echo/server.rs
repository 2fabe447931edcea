//! The server ends, each run in a process of its own (this binary re-run with `ECHO_SERVE`
//! set): this project's consumer, tarpc's, and the raw length-delimited floor.

use std::sync::Arc;

use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use rpc_core::Registry;
use tarpc::server::{BaseChannel, Channel};
use tokio::net::TcpListener;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use transport_tcp::{ServerTls, TcpServerConfig};

use crate::{EchoService, Flavor};

/// The procedures measured.
pub struct Echo;

#[rpc_core::handler]
impl Echo {
    /// Returns its argument, on the registry's worker thread.
    pub fn echo(text: String) -> String {
        text
    }

    /// Returns its argument, on the runtime.
    pub async fn echo_async(text: String) -> String {
        text
    }
}

/// The registry of the apps' consumer by default: one worker (`consumer --workers 1`).
fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register(Echo);
    registry
}

/// Which server a child process runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Peer {
    /// `transport_tcp::serve` with the default `TcpServerConfig` (TLS when `ECHO_TLS_CERT`
    /// and `ECHO_TLS_KEY` name PEM files).
    Rpc,
    /// tarpc 0.38: its serde transport with bincode, a task per request (its examples).
    Tarpc,
    /// Length-delimited frames echoed back as they are.
    Floor,
}

impl Peer {
    /// The name `ECHO_SERVE` takes.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Rpc => "rpc",
            Peer::Tarpc => "tarpc",
            Peer::Floor => "floor",
        }
    }

    fn parse(name: &str) -> Self {
        match name {
            "tarpc" => Peer::Tarpc,
            "floor" => Peer::Floor,
            _ => Peer::Rpc,
        }
    }
}

/// The child process: runs the server `ECHO_SERVE` names on the `ECHO_RUNTIME` flavour,
/// prints its port, and serves until its standard input closes.
pub fn serve_process(peer: &str) {
    let peer = Peer::parse(peer);
    let flavor = Flavor::parse(&std::env::var("ECHO_RUNTIME").unwrap_or_default());
    flavor.runtime().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("{}", listener.local_addr().expect("address").port());
        let stop = CancellationToken::new();
        let server = match peer {
            Peer::Rpc => tokio::spawn(rpc_server(listener, stop.clone())),
            Peer::Tarpc => tokio::spawn(tarpc_server(listener, stop.clone())),
            Peer::Floor => tokio::spawn(floor_server(listener, stop.clone())),
        };
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await;
        stop.cancel();
        let _ = server.await;
    });
}

async fn rpc_server(listener: TcpListener, stop: CancellationToken) {
    let mut config = TcpServerConfig::default();
    if let (Some(cert), Some(key)) = (
        std::env::var_os("ECHO_TLS_CERT"),
        std::env::var_os("ECHO_TLS_KEY"),
    ) {
        config.tls = Some(ServerTls::from_pem_files(cert, key).expect("the consumer's TLS"));
    }
    transport_tcp::serve(listener, Arc::new(registry()), config, stop).await
}

/// tarpc's echo service.
#[derive(Clone)]
struct TarpcEcho;

impl EchoService for TarpcEcho {
    async fn echo(self, _: tarpc::context::Context, text: String) -> String {
        text
    }
}

async fn tarpc_server(listener: TcpListener, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted.expect("accept"),
        };
        // As tarpc's `serde_transport::tcp::listen` frames it, with Nagle off as ours.
        stream.set_nodelay(true).expect("nodelay");
        let framed = tokio_util::codec::Framed::new(stream, LengthDelimitedCodec::new());
        let transport =
            tarpc::serde_transport::new(framed, tarpc::tokio_serde::formats::Bincode::default());
        let channel = BaseChannel::with_defaults(transport);
        tokio::spawn(
            channel
                .execute(TarpcEcho.serve())
                .for_each(|response| async move {
                    tokio::spawn(response);
                }),
        );
    }
}

/// The floor's server: echoes every frame back, no decoding; a reply is fed to the socket's
/// buffer and flushed only once no more request is already read, so that pipelined frames
/// go out in one write.
async fn floor_server(listener: TcpListener, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted.expect("accept"),
        };
        stream.set_nodelay(true).expect("nodelay");
        tokio::spawn(async move {
            let (read, write) = stream.into_split();
            let mut frames = FramedRead::new(read, LengthDelimitedCodec::new());
            let mut sink = FramedWrite::new(write, LengthDelimitedCodec::new());
            while let Some(Ok(frame)) = frames.next().await {
                if sink.feed(frame.freeze()).await.is_err() {
                    return;
                }
                // Every request the socket already has goes into the same write.
                while let Some(next) = frames.next().now_or_never() {
                    let Some(Ok(frame)) = next else {
                        let _ = SinkExt::<Bytes>::flush(&mut sink).await;
                        return;
                    };
                    if sink.feed(frame.freeze()).await.is_err() {
                        return;
                    }
                }
                if SinkExt::<Bytes>::flush(&mut sink).await.is_err() {
                    return;
                }
            }
        });
    }
}
