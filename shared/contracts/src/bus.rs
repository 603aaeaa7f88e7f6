//! Events of the bus itself (not of any one service): a consumer giving up on a message.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Data of `bus.message.dead-lettered`: a consumer gave up on a message and moved it to
/// `{prefix}.dlq.{stream}`. The message itself (payload and headers) is on that subject; this
/// event says where it came from and why, so operators can alert on it and replay it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLettered {
    /// The JetStream stream the message was stored in (e.g. `SW_COMMANDS`).
    pub stream: String,
    /// The durable consumer that gave up.
    pub consumer: String,
    /// The subject the message was published on.
    pub subject: String,
    /// The message's `Nats-Msg-Id`, or `seq:<stream sequence>` when it had none.
    pub msg_id: String,
    /// How many times the message was delivered before it was dead-lettered.
    pub deliveries: i64,
    /// Why: the handler's last error, or that the retry limit was reached.
    pub reason: String,
}
