//! appmeta driven over NATS exactly as the gateway drives it, against real MariaDB, NATS
//! JetStream and Redis. One test binary (to link once on small builders), one module per resource.

mod apps;
mod clusters;
mod components;
mod namespaces;
mod stages;
mod support;
