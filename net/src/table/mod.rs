//! The replicated table (py2p's chord DHT as `net::Table`): placement, versions,
//! quorum decisions, the replica store and anti-entropy digests.

mod digest;
mod error;
mod ids;
mod placement;
mod quorum;
mod record;
mod store;
mod terms;
mod version;
