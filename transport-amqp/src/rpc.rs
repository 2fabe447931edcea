//! [`Rpc`]: the seed's (and aio-pika's) interface in one object: register handlers, call
//! procedures.

use std::sync::Arc;

use rpc_core::{Client, Handler, Registry, RpcError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::{AmqpConfig, AmqpServer, AmqpTransport};

/// An RPC object on a broker, as aio-pika's `RPC.create(channel)`: [`Rpc::register`] serves a
/// handler's procedures, [`Rpc::call`] calls any procedure served by anyone.
///
/// ```
/// use transport_amqp::{AmqpConfig, Rpc};
///
/// struct Calc;
///
/// #[rpc_core::handler]
/// impl Calc {
///     /// Multiplies two numbers.
///     pub fn multiply(x: i64, y: i64) -> i64 {
///         x * y
///     }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), rpc_core::RpcError> {
/// let rpc = Rpc::create(AmqpConfig::default()).await?;
/// rpc.register(Calc).await?;
/// let six: i64 = rpc.call("calc.multiply", &(2i64, 3i64)).await?;
/// assert_eq!(six, 6);
/// rpc.close().await;
/// # transport_amqp::delete_request_queues(&AmqpConfig::default(), &["calc.multiply".into()]).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Rpc {
    config: AmqpConfig,
    client: Client,
    servers: Mutex<Vec<AmqpServer>>,
}

impl Rpc {
    /// Connects the calling half; handlers are served once registered.
    ///
    /// # Errors
    /// [`RpcError::Io`] when the broker cannot be reached.
    pub async fn create(config: AmqpConfig) -> Result<Self, RpcError> {
        let transport = AmqpTransport::connect(config.clone()).await?;
        Ok(Self {
            config,
            client: Client::new(transport),
            servers: Mutex::new(Vec::new()),
        })
    }

    /// Serves every procedure of `handler` (one worker), from now until [`Rpc::close`].
    ///
    /// # Errors
    /// [`RpcError::Io`] when the queues cannot be declared or consumed.
    pub async fn register<H: Handler>(&self, handler: H) -> Result<(), RpcError> {
        let mut registry = Registry::new();
        registry.register(handler);
        self.serve(registry).await
    }

    /// Serves a whole registry (its handlers, with its workers), from now until [`Rpc::close`].
    ///
    /// # Errors
    /// As [`Rpc::register`].
    pub async fn serve(&self, registry: Registry) -> Result<(), RpcError> {
        let server = AmqpServer::start(self.config.clone(), Arc::new(registry)).await?;
        self.servers.lock().await.push(server);
        Ok(())
    }

    /// Calls `procedure` with a tuple of arguments (bincode) and returns its result.
    ///
    /// # Errors
    /// The remote error, [`RpcError::DeadlineExceeded`] when no reply comes within the
    /// client's timeout (30 s), or the transport's own.
    pub async fn call<A, R>(&self, procedure: &str, args: &A) -> Result<R, RpcError>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.client.call(procedure, args).await
    }

    /// The caller, for typed clients (`CalcClient::from_client(rpc.client())`) and raw calls.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Stops serving (finishing and answering the requests held) and closes the connections.
    pub async fn close(self) {
        for server in self.servers.into_inner() {
            server.shutdown().await;
        }
    }
}
