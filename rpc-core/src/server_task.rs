//! [`ServerTask`]: a transport's server half running in a task of its own.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A server running in the background on the current runtime, as every transport's
/// convenience wrapper starts one: [`ServerTask::shutdown`] stops it gracefully (it waits
/// until the server has answered the calls it holds); dropping the handle stops it without
/// waiting.
#[derive(Debug)]
pub struct ServerTask {
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ServerTask {
    /// Spawns `serve`, handing it the token that asks it to stop.
    pub fn spawn<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(shutdown.clone()));
        Self {
            shutdown,
            task: Some(task),
        }
    }

    /// Asks the server to stop and returns once it has answered what it holds and exited.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
