//! A poison task: a request whose procedure aborts its consumer process. The consumers are
//! real child processes, started again each time one dies (as a supervisor keeps a pool
//! running); the quorum queue's delivery limit stops the crash loop, and the caller gets an
//! error naming the cause. Then the same pool answers a sound request.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use rpc_core::{Client, RpcError};
use transport_amqp::{AmqpTransport, Topology, DEFAULT_DELIVERY_LIMIT};

use support::child::{serve_as_child, ChildConsumer};
use support::{config, delete_queues, runtime, unique};

/// The procedures of the consumer processes.
struct Poison;

#[rpc_core::handler]
impl Poison {
    /// Prints `STARTED`, then aborts the whole process (no unwinding, no reply, no ack).
    pub fn abort() {
        println!("STARTED");
        let _ = std::io::stdout().flush();
        std::process::abort();
    }

    /// Adds two numbers.
    pub fn add(a: i64, b: i64) -> i64 {
        a + b
    }
}

const CHILD_VARIABLE: &str = "TRANSPORT_AMQP_POISON_HANDLER";

/// Not a test of its own: the consumer process that the poison test starts (this binary, with
/// the handler name in the environment), again and again. Does nothing otherwise.
#[test]
fn child_consumer() {
    serve_as_child(CHILD_VARIABLE, |registry, name| {
        registry.register_as(name, Poison);
    });
}

/// A child consumer process serving `name`, once it consumes; `None` if it died first.
async fn start_child(name: &str) -> Option<tokio::process::Child> {
    let mut child = ChildConsumer::start(CHILD_VARIABLE, name);
    child.said("CONSUMING").await.then(|| child.into_process())
}

#[test]
fn a_task_that_kills_its_consumer_is_delivered_a_bounded_number_of_times() {
    assert_eq!(
        support::topology(),
        Topology::Quorum,
        "the delivery limit is the quorum topology's"
    );
    runtime().block_on(async {
        let name = unique("poison");
        let mut child = start_child(&name).await.expect("the first consumer");
        let client = Client::new(AmqpTransport::connect(config()).await.expect("a client"))
            .with_timeout(Duration::from_secs(120));
        let started = Instant::now();
        let call = tokio::spawn({
            let client = client.clone();
            let procedure = format!("{name}.abort");
            async move { client.call::<_, ()>(&procedure, &()).await }
        });
        tokio::pin!(call);
        // The supervisor: each dead consumer is replaced, until the call ends. More deaths than
        // this would be the endless crash loop the delivery limit is there to prevent.
        let most = 10;
        let mut deaths = 0;
        let outcome = loop {
            tokio::select! {
                outcome = &mut call => break outcome.expect("the call's task"),
                status = child.wait() => {
                    let status = status.expect("the child's status");
                    assert!(!status.success(), "a consumer exited cleanly: {status}");
                    deaths += 1;
                    assert!(deaths <= most, "{deaths} consumers died: no bound");
                    child = start_child(&name).await.expect("a new consumer");
                }
            }
        };
        let took = started.elapsed();
        println!("{deaths} consumer processes died; the call ended after {took:.1?}: {outcome:?}");
        match &outcome {
            Err(RpcError::Failed(message)) => {
                assert!(message.contains("poison task"), "{message}");
            }
            other => panic!("expected a poison-task error, got {other:?}"),
        }
        assert_eq!(
            deaths,
            DEFAULT_DELIVERY_LIMIT + 1,
            "delivered once, then again up to the delivery limit"
        );
        // The pool is not stuck: the consumer alive now answers a sound request.
        let add = format!("{name}.add");
        assert_eq!(client.call::<_, i64>(&add, &(40i64, 2i64)).await, Ok(42));
        drop(child);
        delete_queues(&name, &["abort", "add"]).await;
    });
}
