//! [`Transport`]: the client half of every transport.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{Call, RpcError};

/// A reply, and which consumer sent it when the transport can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The encoded result, or why there is none.
    pub result: Result<Vec<u8>, RpcError>,
    /// The consumer that answered (an address, a host name), when known.
    pub consumer: Option<String>,
}

/// Carries one call to some consumer and brings back its reply.
///
/// The returned bytes are the result encoded in the call's encoding; a remote error comes back
/// as the same [`RpcError`] variant the consumer raised. Implementations may enforce the call's
/// timeout themselves; [`crate::Client`] enforces it around any transport in any case, and a
/// transport must forget a call whose future was dropped (a late reply is then discarded).
#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends `call` and waits for its reply.
    ///
    /// # Errors
    /// The remote error, or the transport's own: [`RpcError::NoConsumer`], [`RpcError::Io`],
    /// [`RpcError::Protocol`], [`RpcError::Shutdown`], ...
    async fn call(&self, call: Call) -> Result<Vec<u8>, RpcError>;

    /// Like [`Transport::call`], and says which consumer answered. The default knows no
    /// consumer; transports that spread calls over several override it (and then implement
    /// `call` as `self.call_traced(call).await.result`).
    async fn call_traced(&self, call: Call) -> Answer {
        Answer {
            result: self.call(call).await,
            consumer: None,
        }
    }
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for Arc<T> {
    async fn call(&self, call: Call) -> Result<Vec<u8>, RpcError> {
        (**self).call(call).await
    }

    async fn call_traced(&self, call: Call) -> Answer {
        (**self).call_traced(call).await
    }
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for Box<T> {
    async fn call(&self, call: Call) -> Result<Vec<u8>, RpcError> {
        (**self).call(call).await
    }

    async fn call_traced(&self, call: Call) -> Answer {
        (**self).call_traced(call).await
    }
}
