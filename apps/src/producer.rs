//! The producer: generates tasks (or reads them from stdin), queues them on a bounded queue,
//! and has a fixed number of workers call them through the transport.
//!
//! The queue bounds memory and pushes back on the generator when the consumers fall behind.
//! On shutdown the generator stops, and every task already accepted is still called and
//! reported: nothing taken is dropped.

mod sentences;
mod stats;
mod tasks;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpc_core::{Client, RpcError};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

pub use sentences::{sentence, Tone};
pub use stats::{millis, quantile, Stats, Tally};
pub use tasks::{shorten, Generator, Mix, Task, FIBONACCI_MAX};

/// What the producer does and how fast.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// Time between two generated tasks; zero generates as fast as the queue takes them.
    /// Default 0.5 s.
    pub interval: Duration,
    /// Stop after this many tasks; `None` runs until shutdown. Default `None`.
    pub count: Option<u64>,
    /// Seed for reproducible tasks; `None` seeds from the OS. Default `None`.
    pub seed: Option<u64>,
    /// Which procedures to draw from. Default [`Mix::Both`].
    pub mix: Mix,
    /// The largest `n` of generated Fibonacci tasks (drawn from `100..=fibonacci_max`).
    /// Default 10,000, the seed's.
    pub fibonacci_max: i64,
    /// Read text commands from stdin, one per line, instead of generating tasks. Default false.
    pub stdin: bool,
    /// Tasks called at once. Default 16.
    pub concurrency: usize,
    /// Tasks that may wait in the queue. Default 64.
    pub queue: usize,
    /// Each call's timeout. Default 30 s.
    pub timeout: Duration,
    /// Time between two status lines. Default 5 s.
    pub status_every: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(500),
            count: None,
            seed: None,
            mix: Mix::Both,
            fibonacci_max: FIBONACCI_MAX,
            stdin: false,
            concurrency: 16,
            queue: 64,
            timeout: rpc_core::DEFAULT_TIMEOUT,
            status_every: Duration::from_secs(5),
        }
    }
}

impl ProducerConfig {
    /// Sets [`ProducerConfig::interval`].
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets [`ProducerConfig::count`].
    pub fn with_count(mut self, count: Option<u64>) -> Self {
        self.count = count;
        self
    }

    /// Sets [`ProducerConfig::seed`].
    pub fn with_seed(mut self, seed: Option<u64>) -> Self {
        self.seed = seed;
        self
    }

    /// Sets [`ProducerConfig::mix`].
    pub fn with_mix(mut self, mix: Mix) -> Self {
        self.mix = mix;
        self
    }

    /// Sets [`ProducerConfig::fibonacci_max`].
    pub fn with_fibonacci_max(mut self, max: i64) -> Self {
        self.fibonacci_max = max;
        self
    }

    /// Sets [`ProducerConfig::stdin`].
    pub fn with_stdin(mut self, stdin: bool) -> Self {
        self.stdin = stdin;
        self
    }

    /// Sets [`ProducerConfig::concurrency`] (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Sets [`ProducerConfig::queue`] (at least 1).
    pub fn with_queue(mut self, queue: usize) -> Self {
        self.queue = queue.max(1);
        self
    }

    /// Sets [`ProducerConfig::timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Runs the producer until `count` tasks were answered, stdin ended, or `shutdown` fired (then
/// the tasks already queued or in flight are still called), and returns what it saw.
pub async fn run(client: Client, config: ProducerConfig, shutdown: CancellationToken) -> Stats {
    let stats = Arc::new(Mutex::new(Stats::new()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let (sender, receiver) = mpsc::channel::<Task>(config.queue);
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let client = client.with_timeout(config.timeout);

    let workers: Vec<_> = (0..config.concurrency)
        .map(|_| {
            let work = Worker {
                client: client.clone(),
                receiver: receiver.clone(),
                stats: stats.clone(),
                in_flight: in_flight.clone(),
            };
            tokio::spawn(work.run())
        })
        .collect();

    let status = tokio::spawn(report_status(
        config.status_every,
        sender.downgrade(),
        stats.clone(),
        in_flight.clone(),
    ));
    let generated = if config.stdin {
        read_commands(sender, &config, &shutdown, &stats).await
    } else {
        generate(sender, &config, &shutdown).await
    };
    if let Err(err) = generated {
        tracing::error!("task generation stopped: {err}");
    }
    for worker in workers {
        if let Err(err) = worker.await {
            tracing::error!("a producer worker failed: {err}");
        }
    }
    status.abort();
    let summary = lock(&stats).clone();
    summary
}

fn lock(stats: &Mutex<Stats>) -> std::sync::MutexGuard<'_, Stats> {
    stats
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Puts generated tasks on the queue, one per interval, until `count` or shutdown.
async fn generate(
    sender: mpsc::Sender<Task>,
    config: &ProducerConfig,
    shutdown: &CancellationToken,
) -> Result<(), RpcError> {
    let mut generator =
        Generator::new(config.seed, config.mix).with_fibonacci_max(config.fibonacci_max);
    let mut ticker = (!config.interval.is_zero()).then(|| {
        let mut ticker = tokio::time::interval(config.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker
    });
    let mut made = 0u64;
    while config.count.is_none_or(|count| made < count) {
        if let Some(ticker) = ticker.as_mut() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
        }
        let task = generator.next_task()?;
        let name = task.to_string();
        tokio::select! {
            _ = shutdown.cancelled() => {
                tracing::warn!("shutting down: {name} was not queued");
                break;
            }
            sent = sender.send(task) => if sent.is_err() { break },
        }
        tracing::info!("task added: {name}");
        made += 1;
    }
    Ok(())
}

/// Puts one task per stdin line on the queue until stdin ends, `count`, or shutdown; a line
/// that names no procedure is counted as a failed task.
async fn read_commands(
    sender: mpsc::Sender<Task>,
    config: &ProducerConfig,
    shutdown: &CancellationToken,
    stats: &Mutex<Stats>,
) -> Result<(), RpcError> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut made = 0u64;
    while config.count.is_none_or(|count| made < count) {
        let line = tokio::select! {
            _ = shutdown.cancelled() => break,
            line = lines.next_line() => line?,
        };
        let Some(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        made += 1;
        match Task::command(made, &line) {
            Ok(task) => {
                tracing::info!("task added: {task}");
                if sender.send(task).await.is_err() {
                    break;
                }
            }
            Err(err) => {
                tracing::error!("task #{made} {line:?}: {err}");
                lock(stats).record("(unparsed)", None, Duration::ZERO, Err(&err));
            }
        }
    }
    Ok(())
}

/// One of the producer's callers: takes tasks off the queue until it is closed and empty.
struct Worker {
    client: Client,
    receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<Task>>>,
    stats: Arc<Mutex<Stats>>,
    in_flight: Arc<AtomicUsize>,
}

impl Worker {
    async fn run(self) {
        loop {
            let task = self.receiver.lock().await.recv().await;
            let Some(task) = task else { break };
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let answer = self
                .client
                .call_traced(
                    &task.call.procedure,
                    task.call.encoding,
                    task.call.args.clone(),
                )
                .await;
            let latency = started.elapsed();
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            let consumer = answer.consumer.as_deref();
            let by = consumer.map(|c| format!(" by {c}")).unwrap_or_default();
            match &answer.result {
                Ok(bytes) => tracing::info!(
                    "result {task} = {} ({}{by})",
                    task.render(bytes),
                    millis(Some(latency))
                ),
                Err(err) => tracing::error!("failed {task}: {err} ({}{by})", millis(Some(latency))),
            }
            let outcome = answer.result.as_ref().map(|_| ());
            lock(&self.stats).record(task.procedure(), consumer, latency, outcome);
        }
    }
}

/// Logs a status line every `every` until aborted.
async fn report_status(
    every: Duration,
    sender: mpsc::WeakSender<Task>,
    stats: Arc<Mutex<Stats>>,
    in_flight: Arc<AtomicUsize>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        // A weak sender, so that this task never keeps the queue open.
        let queued = sender
            .upgrade()
            .map_or(0, |sender| sender.max_capacity() - sender.capacity());
        let line = lock(&stats).status_line(in_flight.load(Ordering::Relaxed), queued);
        tracing::info!("status: {line}");
    }
}
