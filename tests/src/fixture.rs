//! [`Fixture`]: how the suite starts a server on some transport and reaches it.

use std::sync::Arc;

use async_trait::async_trait;
use rpc_core::{Client, Registry, Transport};

use crate::procedures::{unique_name, Record, Suite, SuiteClient};

/// One transport, as the suite drives it.
#[async_trait]
pub trait Fixture: Send + Sync + Sized + 'static {
    /// Starts a server (consumer) for `registry` on this transport, ready to take calls when
    /// this returns.
    async fn start(registry: Registry) -> Self;

    /// A client transport to the server started by [`Fixture::start`].
    async fn transport(&self) -> Arc<dyn Transport>;

    /// Stops the server: it finishes the calls it holds, then returns.
    async fn stop(self);
}

/// A running server of the suite's procedures under a handler name of its own, so cases
/// sharing one broker never see each other's calls.
pub struct Server<F: Fixture> {
    /// The transport fixture.
    pub fixture: F,
    /// The handler name the [`Suite`] procedures are registered under.
    pub handler: String,
    /// What the procedures recorded.
    pub record: Arc<Record>,
}

impl<F: Fixture> Server<F> {
    /// Starts the suite's procedures with `workers` workers.
    pub async fn start(workers: usize) -> Self {
        let handler = unique_name("suite");
        let mut registry = Registry::new().with_workers(workers);
        let suite = Suite::default();
        let record = suite.record.clone();
        registry.register_as(handler.clone(), suite);
        let fixture = F::start(registry).await;
        Self {
            fixture,
            handler,
            record,
        }
    }

    /// The untyped client, for calls in the JSON and text encodings.
    pub async fn client(&self) -> Client {
        Client::from_arc(self.fixture.transport().await)
    }

    /// The typed client of the suite's procedures.
    pub async fn suite(&self) -> SuiteClient {
        SuiteClient::from_client(self.client().await).named(self.handler.clone())
    }

    /// The full name of one of the suite's procedures, `<handler>.<method>`.
    pub fn procedure(&self, method: &str) -> String {
        format!("{}.{method}", self.handler)
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.fixture.stop().await;
    }
}
