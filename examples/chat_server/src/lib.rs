//! placeholder
mod connection;
mod http;
mod protocol;
mod server;

pub use protocol::*;
#[cfg(feature = "redis")]
pub use server::REDIS_NAMESPACE;
pub use server::{authorize, ChatServer, Config, Moderators};
