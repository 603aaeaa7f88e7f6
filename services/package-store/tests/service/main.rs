//! package-store driven over NATS exactly as the gateway drives it, against real MariaDB, NATS
//! JetStream, Redis and S3. One test binary (to link once on small builders).

mod build_recovery;
mod build_support;
mod builds;
#[path = "../common/mod.rs"]
mod common;
mod components;
mod imports;
mod lifecycle;
mod refusals;
mod support;
