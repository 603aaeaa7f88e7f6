//! Everything that goes over NATS: connection, stream provisioning, CloudEvent publishing, the
//! transactional outbox and its relay, and request/reply between the gateway and the services.
//!
//! How an event moves: a service writes its state change and an outbox row in one MySQL
//! transaction ([`outbox::Outbox::enqueue`]); after commit it wakes the [`outbox::Relay`], which
//! publishes the row to JetStream with `Nats-Msg-Id` = event id, waits for the stream's ack and
//! only then deletes the row. A crash before the delete republishes the row on restart, and
//! JetStream's duplicate window drops the second copy, so subscribers see it once.
//!
//! How a request moves: the gateway calls [`Bus::call`] with an [`RpcEnvelope`] on
//! `{prefix}.api.{service}.{op}`; the owning service, registered with the NATS services API in a
//! queue group ([`rpc::serve`]), runs the handler under a deadline and replies with an
//! [`RpcReply`] or a problem.

pub mod blob;
pub mod consumer;
pub mod names;
pub mod outbox;
pub mod rpc;

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::stream::{Config as StreamConfig, DiscardPolicy, RetentionPolicy, StorageType};
use sw_config::NatsConfig;
pub use sw_contracts::events::CloudEvent;
pub use sw_contracts::rpc::{RpcEnvelope, RpcReply};

pub use crate::blob::{BlobError, BlobReader, StreamOptions};
pub use crate::names::Names;
pub use crate::rpc::{CallMeta, Router, RpcCall};

/// Errors of the bus itself (not of a remote handler).
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("could not connect to NATS at {url} within {secs}s: {source}")]
    Connect {
        url: String,
        secs: u64,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("JetStream stream {stream}: {message}")]
    Stream { stream: String, message: String },
    #[error("publish to {subject} failed: {message}")]
    Publish { subject: String, message: String },
    #[error("service registration failed: {0}")]
    Service(String),
}

/// A connection to NATS and JetStream with the platform's naming.
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    names: Names,
    cfg: NatsConfig,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("prefix", &self.names.prefix()).finish()
    }
}

impl Bus {
    /// Connects, retrying until `connect_timeout_secs` has passed.
    pub async fn connect(cfg: &NatsConfig) -> Result<Self, BusError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(cfg.connect_timeout_secs.max(1));
        let mut delay = Duration::from_millis(100);
        loop {
            let mut opts = async_nats::ConnectOptions::new()
                .name(format!("sreworks-{}", cfg.prefix))
                .connection_timeout(Duration::from_secs(2))
                .request_timeout(Some(cfg.request_timeout()))
                // Keep reconnecting forever once connected; readiness reports the state meanwhile.
                .max_reconnects(None);
            if let (Some(u), Some(p)) = (&cfg.user, &cfg.password) {
                opts = opts.user_and_password(u.clone(), p.expose().to_owned());
            } else if let Some(t) = &cfg.token {
                opts = opts.token(t.expose().to_owned());
            }
            match opts.connect(cfg.url.as_str()).await {
                Ok(client) => {
                    let js = jetstream::new(client.clone());
                    return Ok(Self { client, js, names: Names::new(&cfg.prefix), cfg: cfg.clone() });
                }
                Err(e) if tokio::time::Instant::now() + delay < deadline => {
                    tracing::warn!(url = %cfg.url, error = %e, "NATS not reachable yet; retrying.");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(source) => {
                    return Err(BusError::Connect {
                        url: cfg.url.clone(),
                        secs: cfg.connect_timeout_secs,
                        source,
                    });
                }
            }
        }
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }
    pub fn names(&self) -> &Names {
        &self.names
    }
    pub fn config(&self) -> &NatsConfig {
        &self.cfg
    }

    /// True while the connection to the server is up.
    pub fn is_connected(&self) -> bool {
        matches!(self.client.connection_state(), async_nats::connection::State::Connected)
    }

    /// Creates the events stream, or updates its limits when they changed.
    ///
    /// `{PREFIX}_EVENTS`: subjects `{prefix}.events.>`, file storage, limits retention with the
    /// configured max age and bytes (oldest discarded first), a 2-minute duplicate window.
    pub async fn ensure_streams(&self) -> Result<(), BusError> {
        let config = StreamConfig {
            name: self.names.events_stream(),
            description: Some("sreworks CloudEvents (see proto-schemas/asyncapi.yaml)".into()),
            subjects: vec![self.names.events_wildcard()],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            discard: DiscardPolicy::Old,
            max_age: Duration::from_secs(self.cfg.events_max_age_hours * 3600),
            max_bytes: self.cfg.events_max_bytes,
            max_message_size: 1 << 20,
            duplicate_window: Duration::from_secs(120),
            num_replicas: self.cfg.stream_replicas,
            ..Default::default()
        };
        self.ensure_stream(config).await
    }

    /// Creates a stream or brings an existing one to `config`.
    pub async fn ensure_stream(&self, config: StreamConfig) -> Result<(), BusError> {
        let name = config.name.clone();
        let err = |message: String| BusError::Stream { stream: name.clone(), message };
        match self.js.get_stream(&name).await {
            Ok(mut s) => {
                let info = s.info().await.map_err(|e| err(e.to_string()))?;
                let cur = &info.config;
                if cur.subjects != config.subjects
                    || cur.max_age != config.max_age
                    || cur.max_bytes != config.max_bytes
                    || cur.duplicate_window != config.duplicate_window
                {
                    self.js.update_stream(config).await.map_err(|e| err(e.to_string()))?;
                    tracing::info!(stream = %name, "Stream limits updated.");
                }
                Ok(())
            }
            Err(_) => {
                self.js.create_stream(config).await.map_err(|e| err(e.to_string()))?;
                tracing::info!(stream = %name, "Stream created.");
                Ok(())
            }
        }
    }

    /// Publishes one event to JetStream and waits for the stream's ack.
    /// Returns `true` when JetStream reported it as a duplicate (already stored).
    pub async fn publish_event(&self, event: &CloudEvent) -> Result<bool, BusError> {
        let subject = self.names.event_subject(event.name());
        let payload = serde_json::to_vec(event)
            .map_err(|e| BusError::Publish { subject: subject.clone(), message: e.to_string() })?;
        self.publish_raw(&subject, &event.id, event.traceparent.as_deref(), payload.into()).await
    }

    /// Publishes a serialised event with its id as `Nats-Msg-Id`, waiting for the ack.
    pub async fn publish_raw(
        &self,
        subject: &str,
        msg_id: &str,
        traceparent: Option<&str>,
        payload: bytes::Bytes,
    ) -> Result<bool, BusError> {
        let fail = |message: String| BusError::Publish { subject: subject.to_owned(), message };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        headers.insert("Content-Type", "application/cloudevents+json");
        if let Some(tp) = traceparent {
            headers.insert("traceparent", tp);
        }
        let timeout = self.cfg.request_timeout();
        let ack_future =
            tokio::time::timeout(timeout, self.js.publish_with_headers(subject.to_owned(), headers, payload))
                .await
                .map_err(|_| fail("timed out sending".into()))?
                .map_err(|e| fail(e.to_string()))?;
        let ack = tokio::time::timeout(timeout, ack_future)
            .await
            .map_err(|_| fail("timed out waiting for the stream's ack".into()))?
            .map_err(|e| fail(e.to_string()))?;
        Ok(ack.duplicate)
    }
}
