//! How an external system receives sreworks events: a durable JetStream pull consumer on
//! `SW_EVENTS`, acking each event only after it has been handled.
//!
//! ```text
//! cargo run -p sreworks-e2e --example subscribe -- [--durable my-system] [--filter 'sw.events.appmeta.>'] [--count N]
//! ```
//! `NATS_URL` selects the server (default `nats://127.0.0.1:4222`). The consumer is durable: stop
//! the program, create some apps, start it again, and it continues where it left off.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::StreamExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut durable = "my-system".to_owned();
    let mut filter = "sw.events.>".to_owned();
    let mut count: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--durable" => durable = args.next().unwrap_or(durable),
            "--filter" => filter = args.next().unwrap_or(filter),
            "--count" => count = args.next().and_then(|n| n.parse().ok()),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = async_nats::connect(&url).await?;
    let js = async_nats::jetstream::new(client);
    let stream_name = filter.split('.').next().unwrap_or("sw").to_ascii_uppercase() + "_EVENTS";
    let stream = js.get_stream(&stream_name).await?;
    // Creating a consumer that exists with the same config is a no-op, so this is safe to rerun.
    let consumer = stream
        .get_or_create_consumer(
            &durable,
            pull::Config {
                durable_name: Some(durable.clone()),
                filter_subject: filter.clone(),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_deliver: 10,
                ..Default::default()
            },
        )
        .await?;
    eprintln!("consuming {filter} from {stream_name} as durable '{durable}' (Ctrl-C to stop)");
    let mut messages = consumer.messages().await?;
    let mut seen = 0usize;
    while let Some(msg) = messages.next().await {
        let msg = msg.map_err(|e| anyhow::anyhow!("{e}"))?;
        let event: serde_json::Value = serde_json::from_slice(&msg.payload)?;
        // Handle the event (here: print it as one JSON line), then ack.
        println!("{}", serde_json::to_string(&event)?);
        msg.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        seen += 1;
        if count.is_some_and(|c| seen >= c) {
            break;
        }
    }
    Ok(())
}
