//! The peer engines, each fed the scenario in its own idiom: Cedar policies and entities,
//! Rego with grants indexed in `data`, and a Casbin model with RBAC and deny rules.

pub mod casbin;
pub mod cedar;
pub mod rego;

/// An engine under comparison: built once, then asked about the scenario's requests by
/// position, with inputs prepared in the engine's own form before timing starts.
pub trait Peer {
    fn decide(&mut self, request: usize) -> bool;
}
