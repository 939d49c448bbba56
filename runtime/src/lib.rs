//! Flowgate's engine, for the command line, the sidecar and embedders: load a policy
//! directory, decide requests, run the policy set's tests. IO lives here, at the edge of
//! the pure compiler.

pub mod decision_log;
mod engine;
mod git;
#[cfg_attr(
    not(feature = "server"),
    allow(dead_code, reason = "only the server writes and reads raw JSON text")
)]
mod json_text;
mod outcome;
mod policy_dir;
pub mod routes;
#[cfg(feature = "server")]
pub mod server;
pub mod testing;
pub mod wire;
#[cfg_attr(
    not(feature = "server"),
    allow(dead_code, reason = "only the server decodes raw bodies")
)]
mod wire_fast;

pub use engine::{Engine, EngineError, EngineOptions, PolicyVersion, UnlistedEntities};
pub use policy_dir::{LoadError, PolicyFiles, read_policy_dir, read_policy_paths};
