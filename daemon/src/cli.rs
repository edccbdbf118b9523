//! The offline and client tools of the `netseg` command line.

pub mod flows;
pub mod version;
