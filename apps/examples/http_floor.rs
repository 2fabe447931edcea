//! The HTTP floor of the front door's benchmark: the same server stack (the producer's accept
//! loop, axum, its multi-threaded runtime) answering `POST /v1/call/{procedure}` with a
//! constant, no RPC behind it. `http_floor 127.0.0.1:8081`.

use std::net::SocketAddr;

use axum::routing::post;
use axum::Router;
use rpc_apps::http::{self, ConnectionLimits};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into())
        .parse()?;
    let app = Router::new().route(
        "/v1/call/{procedure}",
        post(|| async {
            (
                [("content-type", "application/json")],
                "2880067194370816120",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("http_floor listening on {}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    http::serve(listener, app, ConnectionLimits::default(), shutdown).await;
    Ok(())
}
