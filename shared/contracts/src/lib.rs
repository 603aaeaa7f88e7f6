//! Wire contracts shared by every sreworks service and its clients.
//!
//! Everything that crosses a process boundary is defined here once: the RFC 9457 problem body,
//! the page envelope, the request/reply envelope the gateway sends over NATS, the CloudEvent
//! envelope and every event payload, and the DTOs of each service (`XIn` to create, `XPatch` to
//! change, `XOut` to read). Each type derives both `utoipa::ToSchema` (for the OpenAPI document)
//! and `schemars::JsonSchema` (for the event schemas and the AsyncAPI document), so the published
//! contracts are generated from these types and cannot drift from them.

pub mod appmeta;
pub mod auth;
pub mod bus;
pub mod events;
pub mod executor;
pub mod ids;
pub mod packages;
pub mod page;
pub mod problem;
pub mod rpc;
pub mod workflow;

pub use ids::{AppId, IdError, Name};
pub use page::{Page, PageQuery};
pub use problem::{FieldError, Problem};
