//! What a discovery round did: which paths ran, what each found, and why a path found
//! nothing, so that an empty `peers()` is explained instead of silent.

use std::fmt;

use super::table::PeerInfo;
use super::Discovery;

/// How one path did in a discovery round.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PathReport {
    /// The path.
    pub path: Discovery,
    /// Whether it ran (false: not selected, confined, or nothing to do).
    pub ran: bool,
    /// Peers it found or confirmed in this round.
    pub found: usize,
    /// What it did, or why it found nothing: e.g. "not asked for", "the neighbour table
    /// is empty", "12 probed: 12 closed (nothing listening)".
    pub detail: String,
}

impl PathReport {
    pub(crate) fn idle(path: Discovery, why: impl Into<String>) -> Self {
        PathReport {
            path,
            ran: false,
            found: 0,
            detail: why.into(),
        }
    }

    pub(crate) fn ran(path: Discovery, found: usize, detail: impl Into<String>) -> Self {
        PathReport {
            path,
            ran: true,
            found,
            detail: detail.into(),
        }
    }
}

/// The outcome of `peers()`: the peers (filtered as asked) and how each path did in the
/// last discovery round. Its `Display` is the explanation printed when nothing is found.
///
/// ```
/// # #[tokio::main] async fn main() -> net::Result<()> {
/// let lonely = net::Peer::start(
///     net::Config::default().loopback(true).port(0).discovery("scan".parse()?),
/// ).await?;
/// let report = lonely.peers().report().await?;
/// assert!(report.peers.is_empty());
/// assert!(report.to_string().contains("scan"));
/// lonely.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Report {
    /// The peers, as `peers()` returns them.
    pub peers: Vec<PeerInfo>,
    /// Every path, whether it ran or not, with what it found.
    pub paths: Vec<PathReport>,
    /// How many known peers the filters (group, hubs, on host) left out.
    pub filtered_out: usize,
}

impl Report {
    /// The report of one path.
    pub fn path(&self, path: Discovery) -> Option<&PathReport> {
        self.paths.iter().find(|p| p.path == path)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.peers.is_empty() {
            write!(f, "no peers found")?;
        } else {
            write!(f, "{} peer(s) found", self.peers.len())?;
        }
        if self.filtered_out > 0 {
            write!(
                f,
                " ({} more known but left out by the group/hub/on-host filters)",
                self.filtered_out
            )?;
        }
        for path in &self.paths {
            let state = if path.ran {
                format!("found {}", path.found)
            } else {
                "did not run".to_owned()
            };
            write!(f, "\n  {:<5} {state}: {}", path.path.name(), path.detail)?;
        }
        Ok(())
    }
}
