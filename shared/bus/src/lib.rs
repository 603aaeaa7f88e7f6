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
//!
//! How a command moves: the sender (the workflow) calls [`Bus::publish_command`], which stores the
//! command object on `{prefix}.cmd.{executor}.{verb}` in the work-queue stream `{PREFIX}_COMMANDS`
//! with `Nats-Msg-Id` = its command id. The executor's replicas share one durable consumer
//! ([`consumer::run`]); one of them takes the command, and the stream deletes it once acked.

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

/// How long the commands stream keeps a command no executor took: far beyond any command's own
/// health deadline, so only the commands of an executor that never ran expire, long after their
/// sender gave up on them (and a late one would be refused for its old revision anyway).
pub const COMMANDS_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most commands waiting in the commands stream; beyond it new ones are refused, not old ones
/// dropped.
pub const COMMANDS_MAX_MSGS: i64 = 100_000;
/// Most bytes waiting in the commands stream, with the same refusal.
pub const COMMANDS_MAX_BYTES: i64 = 1 << 30;
/// Largest message either stream accepts.
const MAX_MESSAGE_SIZE: i32 = 1 << 20;
/// JetStream drops a second message with the same `Nats-Msg-Id` within this window.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// `Content-Type` of events (CloudEvents in JSON structured mode).
pub(crate) const EVENT_CONTENT_TYPE: &str = "application/cloudevents+json";
/// `Content-Type` of commands (the command object itself).
pub const COMMAND_CONTENT_TYPE: &str = "application/json";

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

/// What [`Bus::ensure_stream`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    Created,
    /// The stream existed with other limits and was brought to the configuration.
    Updated,
    /// The stream existed as configured.
    Unchanged,
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

    /// Creates the platform's streams, or updates their limits when they changed.
    ///
    /// `{PREFIX}_EVENTS`: subjects `{prefix}.events.>`, file storage, limits retention with the
    /// configured max age and bytes (oldest discarded first), a 2-minute duplicate window.
    ///
    /// `{PREFIX}_COMMANDS`: subjects `{prefix}.cmd.>`, file storage, work-queue retention (a
    /// command is removed once a consumer acks it, and each subject can have only one consumer,
    /// shared by an executor's replicas), [`COMMANDS_MAX_AGE`], [`COMMANDS_MAX_MSGS`] and
    /// [`COMMANDS_MAX_BYTES`] with new commands refused when full, a 2-minute duplicate window.
    pub async fn ensure_streams(&self) -> Result<(), BusError> {
        self.ensure_stream(self.events_stream_config()).await?;
        self.ensure_stream(self.commands_stream_config()).await?;
        Ok(())
    }

    /// The configuration [`Bus::ensure_streams`] gives `{PREFIX}_EVENTS`.
    pub fn events_stream_config(&self) -> StreamConfig {
        StreamConfig {
            name: self.names.events_stream(),
            description: Some("sreworks CloudEvents (see proto-schemas/asyncapi.yaml)".into()),
            subjects: vec![self.names.events_wildcard()],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            discard: DiscardPolicy::Old,
            max_age: Duration::from_secs(self.cfg.events_max_age_hours * 3600),
            // Unlimited, as the server reports it (it turns 0 into -1), so a restart sees no change.
            max_messages: -1,
            max_bytes: self.cfg.events_max_bytes,
            max_message_size: MAX_MESSAGE_SIZE,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: self.cfg.stream_replicas,
            ..Default::default()
        }
    }

    /// The configuration [`Bus::ensure_streams`] gives `{PREFIX}_COMMANDS`.
    pub fn commands_stream_config(&self) -> StreamConfig {
        StreamConfig {
            name: self.names.commands_stream(),
            description: Some(
                "sreworks commands to executors, a work queue (see proto-schemas/asyncapi.yaml)".into(),
            ),
            subjects: vec![self.names.commands_wildcard()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            // Discarding the oldest would silently drop work no executor has done; refusing the
            // new command makes the sender's publish fail, so it retries or reports instead.
            discard: DiscardPolicy::New,
            max_age: COMMANDS_MAX_AGE,
            max_messages: COMMANDS_MAX_MSGS,
            max_bytes: COMMANDS_MAX_BYTES,
            max_message_size: MAX_MESSAGE_SIZE,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: self.cfg.stream_replicas,
            ..Default::default()
        }
    }

    /// Creates a stream or brings an existing one to `config`.
    ///
    /// JetStream cannot change a stream's retention to or from work queue in place, so an existing
    /// stream with another retention is an error for the operator (drain and delete it) rather
    /// than a stream that silently keeps or loses messages against its contract.
    pub async fn ensure_stream(&self, config: StreamConfig) -> Result<Provisioned, BusError> {
        let name = config.name.clone();
        let err = |message: String| BusError::Stream { stream: name.clone(), message };
        match self.js.get_stream(&name).await {
            Ok(mut s) => {
                let info = s.info().await.map_err(|e| err(e.to_string()))?;
                let cur = &info.config;
                if cur.retention != config.retention {
                    return Err(err(format!(
                        "exists with retention {:?} where {:?} is required; JetStream cannot change it \
                         in place: drain the stream, delete it and restart",
                        cur.retention, config.retention
                    )));
                }
                if cur.subjects != config.subjects
                    || cur.max_age != config.max_age
                    || cur.max_bytes != config.max_bytes
                    || cur.max_messages != config.max_messages
                    || cur.discard != config.discard
                    || cur.duplicate_window != config.duplicate_window
                {
                    self.js.update_stream(config).await.map_err(|e| err(e.to_string()))?;
                    tracing::info!(stream = %name, "Stream limits updated.");
                    return Ok(Provisioned::Updated);
                }
                Ok(Provisioned::Unchanged)
            }
            Err(_) => {
                self.js.create_stream(config).await.map_err(|e| err(e.to_string()))?;
                tracing::info!(stream = %name, "Stream created.");
                Ok(Provisioned::Created)
            }
        }
    }

    /// Puts a command on `{prefix}.cmd.{name}` (stream `{PREFIX}_COMMANDS`) and waits for the
    /// stream's ack. The body is the command itself as JSON (`Content-Type: application/json`, not
    /// a CloudEvent: a command is a work item for one executor, not a fact for every subscriber);
    /// `command_id` is the `Nats-Msg-Id`, so a command re-sent within the duplicate window is
    /// queued once. Returns `true` when JetStream reported it as a duplicate. A full queue refuses
    /// the command with [`BusError::Publish`].
    pub async fn publish_command<T: serde::Serialize>(
        &self,
        name: &str,
        command_id: &str,
        traceparent: Option<&str>,
        command: &T,
    ) -> Result<bool, BusError> {
        let subject = self.names.command_subject(name);
        let payload = serde_json::to_vec(command)
            .map_err(|e| BusError::Publish { subject: subject.clone(), message: e.to_string() })?;
        self.publish_acked(&subject, command_id, COMMAND_CONTENT_TYPE, traceparent, payload.into()).await
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
        self.publish_acked(subject, msg_id, EVENT_CONTENT_TYPE, traceparent, payload).await
    }

    async fn publish_acked(
        &self,
        subject: &str,
        msg_id: &str,
        content_type: &'static str,
        traceparent: Option<&str>,
        payload: bytes::Bytes,
    ) -> Result<bool, BusError> {
        let pending = self.send_to_stream(subject, msg_id, content_type, traceparent, payload).await?;
        pending.ack().await
    }

    /// Sends one message to JetStream without waiting for the stream's ack ([`PendingAck::ack`]
    /// waits), so a caller can send a batch and then collect the acks (the outbox relay).
    pub(crate) async fn send_to_stream(
        &self,
        subject: &str,
        msg_id: &str,
        content_type: &'static str,
        traceparent: Option<&str>,
        payload: bytes::Bytes,
    ) -> Result<PendingAck, BusError> {
        let fail = |message: String| BusError::Publish { subject: subject.to_owned(), message };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        headers.insert("Content-Type", content_type);
        if let Some(tp) = traceparent {
            headers.insert("traceparent", tp);
        }
        let timeout = self.cfg.request_timeout();
        let ack =
            tokio::time::timeout(timeout, self.js.publish_with_headers(subject.to_owned(), headers, payload))
                .await
                .map_err(|_| fail("timed out sending".into()))?
                .map_err(|e| fail(e.to_string()))?;
        Ok(PendingAck { subject: subject.to_owned(), ack, timeout })
    }
}

/// A message sent to JetStream whose ack has not been read yet.
pub(crate) struct PendingAck {
    subject: String,
    ack: async_nats::jetstream::context::PublishAckFuture,
    timeout: std::time::Duration,
}

impl PendingAck {
    /// Waits for the stream's ack; `true` when JetStream reported the message as a duplicate.
    pub(crate) async fn ack(self) -> Result<bool, BusError> {
        let subject = self.subject;
        let ack = tokio::time::timeout(self.timeout, self.ack)
            .await
            .map_err(|_| BusError::Publish {
                subject: subject.clone(),
                message: "timed out waiting for the stream's ack".into(),
            })?
            .map_err(|e| BusError::Publish { subject, message: e.to_string() })?;
        Ok(ack.duplicate)
    }
}
