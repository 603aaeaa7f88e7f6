//! A bare axum server answering a small JSON document: the ceiling the gateway is measured against.
//! `bare-hello 127.0.0.1:18081`

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18081".into());
    let app = Router::new().route(
        "/v1/apps/{id}",
        get(|| async { ([("content-type", "application/json")], r#"{"appId":"bench","name":"bench"}"#) }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
