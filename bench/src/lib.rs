//! What the `netseg-bench` binary and the criterion bench of the programs
//! (`benches/programs.rs`) share.

pub mod program_fixture;
