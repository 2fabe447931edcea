//! [`linger`]: closing a connection without destroying the last answer written to it.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::time::timeout;

/// How long [`linger`] waits for the client to close its side.
const LINGER: Duration = Duration::from_secs(1);

/// Reads and discards what the client still sends, for a moment, before closing: closing a
/// socket with unread bytes resets the connection, and the reset can destroy the reply
/// before the client reads it.
pub(crate) async fn linger<S: AsyncReadExt + Unpin>(stream: &mut S) {
    let drain = async {
        let mut sink = [0u8; 4096];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = timeout(LINGER, drain).await;
}
