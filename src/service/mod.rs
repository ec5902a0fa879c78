//! Services: ready-made handlers, and the layer that turns a function of
//! one request into a handler.
//!
//! - [`echo`](echo::echo): every byte back.
//! - [`FramedService`] + your [`Protocol`]: request/response over frames
//!   ([`crate::frame`]) with pipelining, metrics, a request-rate limit and
//!   deadlines.

mod deadline;
pub mod echo;
mod framed;
mod protocol;

pub use deadline::{current_deadline, time_left};
pub use framed::FramedService;
pub use protocol::{Answer, Protocol, RequestContext};
