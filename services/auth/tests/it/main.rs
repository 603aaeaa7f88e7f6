//! Integration tests of the auth service against real MariaDB, NATS JetStream and Redis, each test
//! isolated by its own `TestEnv`. One test binary (modules below) to keep link time down.

mod bootstrap;
mod clients;
mod common;
mod keys;
mod tokens;
mod users;
