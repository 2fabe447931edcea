//! The calling ends, in the bench's own process: each peer's client, one call at a time or
//! many in flight, timed with [`Latencies`].

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use rpc_core::Client;
use test_support::Latencies;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedRead, FramedWrite, LengthDelimitedCodec};
use transport_tcp::{TcpTransport, TcpTransportConfig};

use crate::{EchoServiceClient, PAYLOAD};

/// Latencies of one measurement, and how long it ran.
pub struct Sample {
    pub latencies: Latencies,
    pub elapsed: Duration,
}

impl Sample {
    /// Calls per second.
    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `tasks` tasks, each making calls with `call` one after the other for `secs`.
pub async fn calls<F, Fut>(tasks: usize, secs: Duration, call: F) -> Sample
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Latencies::new();
                while started.elapsed() < secs {
                    let t = Instant::now();
                    call().await;
                    latencies.record(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Latencies::new();
    for worker in workers {
        latencies.merge(&worker.await.expect("task"));
    }
    Sample {
        latencies,
        elapsed: started.elapsed(),
    }
}

/// This project's calls: `rpc_core::Client` over a `TcpTransport`.
pub async fn rpc(client: Client, method: &'static str, tasks: usize, secs: Duration) -> Sample {
    calls(tasks, secs, move || {
        let client = client.clone();
        async move {
            let echo: String = client.call(method, &(PAYLOAD,)).await.expect("echo");
            assert_eq!(echo.len(), PAYLOAD.len());
        }
    })
    .await
}

/// A pool over one consumer with `config`.
pub fn rpc_client(addr: SocketAddr, config: TcpTransportConfig) -> Client {
    Client::new(TcpTransport::new([addr.to_string()], config).expect("pool"))
}

/// The pool configuration of the row labelled *tuned*: the default with its pipeline's floor
/// at `in_flight`, so that the pool lets that many calls onto the one connection from the
/// first call on, instead of learning it.
pub fn tuned_pool_config(in_flight: usize) -> TcpTransportConfig {
    let mut config = TcpTransportConfig::default();
    config.queued_per_consumer = in_flight;
    config
}

/// tarpc's calls, over one connection.
pub async fn tarpc(client: EchoServiceClient, tasks: usize, secs: Duration) -> Sample {
    calls(tasks, secs, move || {
        let client = client.clone();
        async move {
            let echo = client
                .echo(tarpc::context::current(), PAYLOAD.to_string())
                .await
                .expect("echo");
            assert_eq!(echo.len(), PAYLOAD.len());
        }
    })
    .await
}

/// A tarpc client connected to `addr` with its default configuration (Nagle off, as ours).
pub async fn tarpc_client(addr: SocketAddr) -> EchoServiceClient {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let framed = Framed::new(stream, LengthDelimitedCodec::new());
    let transport =
        tarpc::serde_transport::new(framed, tarpc::tokio_serde::formats::Bincode::default());
    EchoServiceClient::new(tarpc::client::Config::default(), transport).spawn()
}

/// The floor, one frame at a time.
pub async fn floor_sequential(addr: SocketAddr, secs: Duration) -> Sample {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
    let payload = Bytes::from_static(PAYLOAD.as_bytes());
    let started = Instant::now();
    let mut latencies = Latencies::new();
    while started.elapsed() < secs {
        let t = Instant::now();
        framed.send(payload.clone()).await.expect("send");
        let echo = framed.next().await.expect("echo").expect("frame");
        assert_eq!(echo.len(), PAYLOAD.len());
        latencies.record(t.elapsed());
    }
    Sample {
        latencies,
        elapsed: started.elapsed(),
    }
}

/// The floor, `in_flight` frames outstanding on one connection: a writer task sends a frame
/// whenever one comes back, every frame it can send at once in one write, and the reader
/// takes echoes as they come (both as the floor's server does).
pub async fn floor_pipelined(addr: SocketAddr, in_flight: usize, secs: Duration) -> Sample {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (read, write) = stream.into_split();
    let mut frames = FramedRead::new(read, LengthDelimitedCodec::new());
    let mut sink = FramedWrite::new(write, LengthDelimitedCodec::new());
    let payload = Bytes::from_static(PAYLOAD.as_bytes());
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::channel::<Instant>(in_flight);
    let writer = tokio::spawn(async move {
        // The channel's capacity keeps `in_flight` frames outstanding.
        while let Ok(permit) = sent_tx.reserve().await {
            permit.send(Instant::now());
            if sink.feed(payload.clone()).await.is_err() {
                return;
            }
            while let Some(Ok(permit)) = sent_tx.reserve().now_or_never() {
                permit.send(Instant::now());
                if sink.feed(payload.clone()).await.is_err() {
                    return;
                }
            }
            if SinkExt::<Bytes>::flush(&mut sink).await.is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut latencies = Latencies::new();
    while started.elapsed() < secs {
        let echo = frames.next().await.expect("echo").expect("frame");
        let sent = sent_rx.recv().await.expect("send time");
        assert_eq!(echo.len(), PAYLOAD.len());
        latencies.record(sent.elapsed());
    }
    let elapsed = started.elapsed();
    writer.abort();
    Sample { latencies, elapsed }
}
