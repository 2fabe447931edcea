//! [`Transport`]: the client half of every transport.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{Call, RpcError};

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
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for Arc<T> {
    async fn call(&self, call: Call) -> Result<Vec<u8>, RpcError> {
        (**self).call(call).await
    }
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for Box<T> {
    async fn call(&self, call: Call) -> Result<Vec<u8>, RpcError> {
        (**self).call(call).await
    }
}
