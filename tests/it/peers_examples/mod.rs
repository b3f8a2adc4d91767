//! The Peers tutorial's transcripts, each run against its example as real processes: the
//! registry, the P2P registry's diamond, and the numbers herd.

mod numbers;
mod p2p_registry;
mod registry;
