//! hookbus-send: the signed HTTP send, one attempt at a time, used by the deliverer for
//! every delivery and by the router's `POST /api/hooks/:id/test`, so neither service
//! depends on the other.
//!
//! [`prepare`] renders and signs (pure) → [`sender`] POSTs through a guarded client →
//! [`result`] what came back, as plain data.

pub mod prepare;
pub mod result;
pub mod sender;

pub use prepare::{prepare, Prepared};
pub use result::{AttemptResult, Failure};
pub use sender::{Sender, Sent};
