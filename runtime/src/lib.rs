//! What the command line, the sidecar and embedders share at the edge of the pure
//! compiler: reading a policy directory from disk.

mod policy_dir;

pub use policy_dir::{LoadError, PolicyFiles, read_policy_dir, read_policy_paths};
