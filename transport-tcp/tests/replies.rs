//! How a consumer writes its replies: a burst of calls is answered as it is worked through,
//! not all at once after the last.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::raw::{handshake, read_frame, request_frame};
use rpc_core::encoding::to_bincode;
use rpc_core::Registry;
use tokio::io::AsyncWriteExt;
use transport_tcp::{TcpServer, TcpServerConfig};

/// An `async` procedure that holds the connection's task while it works, as a CPU-bound
/// `async fn` does: the calls of a burst run one after another on that task.
struct Busy {
    started: Arc<AtomicUsize>,
}

#[rpc_core::handler]
impl Busy {
    /// Counts its start, then works `ms` milliseconds without yielding.
    pub async fn work(&self, ms: u64) -> u64 {
        self.started.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(ms));
        ms
    }
}

#[test]
fn a_burst_is_answered_as_it_is_worked_through() {
    // The consumer on a runtime of its own: its busy calls hold that runtime's one thread,
    // and this side still reads what was written meanwhile.
    let consumer = test_support::runtime(1);
    let started = Arc::new(AtomicUsize::new(0));
    let mut registry = Registry::new();
    registry.register(Busy {
        started: started.clone(),
    });
    let server = consumer
        .block_on(TcpServer::bind(
            "127.0.0.1:0",
            registry,
            TcpServerConfig::default(),
        ))
        .expect("bind");
    let producer = test_support::runtime(1);
    producer.block_on(async {
        let mut stream = handshake(&server).await;
        // 64 calls of 2 ms in one write: the consumer reads them all at once and always has
        // another ready while it works through them.
        let calls = 64;
        let args = to_bincode(&(2u64,)).expect("args");
        let burst: Vec<u8> = (1..=calls)
            .flat_map(|id| request_frame(id, "busy.work", args.clone()))
            .collect();
        stream.write_all(&burst).await.expect("the burst");
        let first = read_frame(&mut stream).await;
        let when_first = started.load(Ordering::SeqCst);
        assert_eq!(first[..4], [1, 0, 0, 0], "a reply: {first:?}");
        // Written once 16 are answered; allow for the ones started while it travels.
        assert!(
            when_first <= 32,
            "the first reply came after {when_first} of {calls} calls started: the consumer \
             held the burst's replies back"
        );
        for _ in 1..calls {
            read_frame(&mut stream).await;
        }
    });
    consumer.block_on(server.shutdown());
}
