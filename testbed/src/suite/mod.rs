//! The conformance engine the root-only suites share: cases as data
//! ([`Case`]), the world they run in ([`World`], built from a [`Layout`]),
//! and the runner that applies each step to the running daemon, probes every
//! pair of pods and reports every failing case with its matrices.

pub mod case;
pub mod layout;
mod rows;
pub mod runner;
pub mod world;

pub use case::{Case, Change, Check, Model, ProbeName, Row, Step, cidr_of};
pub use layout::{Labels, Layout, NamespaceLayout, PodLayout};
pub use runner::run_group;
pub use world::{World, WorldConfig};
