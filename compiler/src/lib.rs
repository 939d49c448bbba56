//! The Flowgate policy language front end: source text in, a checked policy set and
//! diagnostics out. It does no IO: callers hand in file contents and the current time.

pub mod check;
pub mod diag;
pub mod eval;
pub mod fmt;
pub mod ir;
pub mod lower;
mod resolve;
pub mod source;
pub mod suggest;
pub mod syntax;
pub mod table;
pub mod time;

pub use check::{Analysis, CheckOptions, analyze};
