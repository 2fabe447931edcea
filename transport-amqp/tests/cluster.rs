//! A three-node RabbitMQ cluster (`scripts/rabbitmq_cluster.sh`, started and removed here):
//! a client and two consumers connected to different nodes, tasks at 100 per second.
//!
//! 1. The node leading the request queue is killed (SIGKILL): every task answered, none
//!    failed, and the answers back at their earlier rate within 10 s.
//! 2. The killed node started again (it rejoins), then another node stopped gracefully, the
//!    client's, made the queue's leader first: again every task answered, none failed.
//!
//! A test target of its own with a single test: it starts its own cluster beside the usual
//! broker, and cargo runs test binaries one after another.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_core::{Client, Registry};
use transport_amqp::{AmqpConfig, AmqpServer, AmqpTransport, AmqpUrl, Topology};

use support::{run_twice, runtime, unique, Load, Tally};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .join("scripts/rabbitmq_cluster.sh")
}

/// Runs the cluster script with `args`; its standard output.
fn run_script(args: &[&str]) -> String {
    test_support::stdout_of(Command::new(script()).args(args))
}

/// The cluster, stopped and removed however the test ends.
struct Cluster {
    urls: Vec<String>,
}

impl Cluster {
    fn start() -> Cluster {
        let started = Instant::now();
        run_script(&["start"]);
        println!("cluster up and joined in {:.1?}", started.elapsed());
        let urls = run_script(&["urls"])
            .split(',')
            .map(str::to_string)
            .collect();
        Cluster { urls }
    }

    /// The nodes' URLs, node `first` (1-3) first and the others after it in turn.
    fn urls_from(&self, first: usize) -> AmqpUrl {
        let n = self.urls.len();
        let list: Vec<&str> = (0..n)
            .map(|i| self.urls[(first - 1 + i) % n].as_str())
            .collect();
        AmqpUrl::new(list.join(","))
    }

    /// The node (1-3) leading quorum queue `queue`.
    fn leader(&self, queue: &str) -> usize {
        let leader = run_script(&["leader", queue]);
        leader
            .parse()
            .unwrap_or_else(|_| panic!("no node number: {leader}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        run_script(&["stop"]);
    }
}

fn config(url: AmqpUrl) -> AmqpConfig {
    AmqpConfig::new(url)
        .with_topology(Topology::Quorum)
        .with_reconnect_delays(Duration::from_millis(100), Duration::from_secs(1))
}

const TASKS: u64 = 800;
const INTERVAL: Duration = Duration::from_millis(10);

/// Tasks at 100/s through `client`; after 200 answers `disrupt` runs (it blocks: the script);
/// then every task must be answered, none failed, and the rate back within 10 s.
async fn run_through(
    client: &Client,
    procedure: &str,
    first_tag: u64,
    what: &str,
    disrupt: impl FnOnce(),
) {
    let load = Load::start(
        client.clone(),
        procedure.to_string(),
        first_tag,
        TASKS,
        INTERVAL,
    );
    load.wait_answers(200).await;
    let rate = load.rate_now(Duration::from_secs(1));
    let at = Instant::now();
    tokio::task::block_in_place(disrupt);
    let tags = load.tags.clone();
    let outcome = load.finish().await;
    if !outcome.failed.is_empty() {
        diagnose();
    }
    let back = outcome.back_to_rate(at, rate);
    println!(
        "{what}: {} tasks sent, {} answered, {} failed, {} run twice; rate before {rate:.0}/s, \
         longest pause in answers {:.1?}, back to the rate {back:.1?} after, all answered {:.1?} \
         after",
        outcome.sent,
        outcome.answered,
        outcome.failed.len(),
        run_twice(tags),
        outcome.longest_pause_after(at),
        outcome.last_answer_after(at).unwrap_or_default(),
    );
    assert!(
        outcome.failed.is_empty(),
        "{what}: {} of {} failed: {:?}",
        outcome.failed.len(),
        outcome.sent,
        outcome.failed
    );
    assert_eq!(outcome.answered, outcome.sent, "{what}");
    let back = back.unwrap_or_else(|| panic!("{what}: never back to {rate:.0}/s"));
    assert!(
        back <= Duration::from_secs(10),
        "{what}: back to rate after {back:?}"
    );
}

/// Prints what each running node says of its queues and connections.
fn diagnose() {
    for node in 1..=3 {
        for what in [
            &[
                "list_queues",
                "name",
                "leader",
                "online",
                "messages",
                "consumers",
            ][..],
            &["list_connections", "name", "state"][..],
        ] {
            let output = Command::new("rabbitmqctl")
                .args(["-q", "-n", &format!("rpc-c{node}@{}", host())])
                .args(what)
                .output();
            if let Ok(output) = output {
                println!(
                    "node {node} {}:\n{}",
                    what[0],
                    String::from_utf8_lossy(&output.stdout)
                );
            }
        }
    }
}

fn host() -> String {
    let output = Command::new("hostname")
        .arg("-s")
        .output()
        .expect("hostname");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The leader killed, then back; then the client's node, made the leader, stopped gracefully.
/// Both faults on one cluster, in every `./run_rpc_tests.sh`.
#[test]
fn calls_ride_out_the_leaders_kill_and_a_graceful_node_stop() {
    ride_out_the_loss_of_cluster_nodes();
}

fn ride_out_the_loss_of_cluster_nodes() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let cluster = Cluster::start();
    runtime().block_on(async {
        let name = unique("cluster");
        let mut servers = Vec::new();
        // Consumers on nodes 1 and 2 (the first declares the queue: its node leads it), the
        // client on node 3; each has the whole list to fail over to.
        for node in [1, 2] {
            let mut registry = Registry::new().with_workers(2);
            registry.register_as(name.clone(), Tally);
            servers.push(
                AmqpServer::start(config(cluster.urls_from(node)), Arc::new(registry))
                    .await
                    .expect("a consumer on the cluster"),
            );
        }
        let transport = AmqpTransport::connect(config(cluster.urls_from(3)))
            .await
            .expect("a client on the cluster");
        let client = Client::new(transport).with_timeout(Duration::from_secs(30));
        let procedure = format!("{name}.task");

        let killed = cluster.leader(&procedure);
        run_through(
            &client,
            &procedure,
            1_000_000,
            &format!("SIGKILL of node {killed}, the queue's leader"),
            || {
                run_script(&["kill", &killed.to_string()]);
            },
        )
        .await;

        let rejoined = Instant::now();
        run_script(&["start-node", &killed.to_string()]);
        println!(
            "node {killed} back in the cluster after {:.1?}",
            rejoined.elapsed()
        );
        // The client's node, so that the client fails over too (unless it was the one
        // killed: then the other consumer's), made the queue's leader first: the hard case,
        // where the client's new channel on another node still sees the stopped node as the
        // leader for a while.
        let stopped = if killed == 3 { 2 } else { 3 };
        run_script(&["lead", &procedure, &stopped.to_string()]);
        run_through(
            &client,
            &procedure,
            2_000_000,
            &format!("graceful stop of node {stopped}, the client's and the queue's leader"),
            || {
                run_script(&["stop-node", &stopped.to_string()]);
            },
        )
        .await;
        for server in servers {
            server.shutdown().await;
        }
    });
    drop(cluster);
}
