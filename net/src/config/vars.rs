//! The `NET_*` variables anything in `net` reads, and the warning for one it does not:
//! a misspelt variable would otherwise be silently ignored.

use std::ffi::OsString;
use std::sync::Once;

/// Every `NET_*` variable read by the library, its command line, its tests and benchmarks,
/// or by the other side of a shared environment (Python app-net reads the same names).
pub(crate) const KNOWN: &[&str] = &[
    "NET_PORT",
    "NET_PORT_START",
    "NET_PORT_RANGE",
    "NET_THREAD_LIMIT",
    "NET_GROUP",
    "NET_IS_HUB",
    "NET_DEV",
    "NET_HOST",
    "NET_LOOPBACK",
    "NET_TIMEOUT",
    "NET_MAX_FRAME",
    "NET_PEERS",
    "NET_CLIENT",
    "NET_DISCOVERY",
    "NET_MDNS",
    "NET_PROBE_TIMEOUT",
    "NET_MDNS_SERVICE",
    "NET_SECRET",
    "NET_SECRET_FILE",
    "NET_APPNET",
    "NET_TABLE_DIR",
    "NET_TABLE_REPLICAS",
    // The limits every connection is held to (config/limits.rs).
    "NET_HELLO_TIMEOUT",
    "NET_FRAME_TIMEOUT",
    "NET_MIN_RATE",
    "NET_IDLE_TIMEOUT",
    "NET_MAX_CONNECTIONS",
    "NET_MAX_CALLS",
    "NET_CONN_THREADS",
    "NET_CONN_MEMORY",
    "NET_PEER_MEMORY",
    // This project's test harness and benchmarks.
    "NET_REQUIRE_APPNET",
    "NET_REQUIRE_NOISE",
    "NET_NOISE_PYTHON",
    "NET_REQUIRE_CAPTURE",
    "NET_HOSTILE_TEST_SERVER",
    "NET_BENCH_ONLY",
    "NET_BENCH_SHARED",
    "NET_BENCH_QUICK",
];

/// The warning for each `NET_*` variable in `vars` that is not known, with the closest
/// known name when there is a likely one.
pub(crate) fn unknown(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<String> {
    let mut warnings: Vec<String> = vars
        .into_iter()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("NET_") && !KNOWN.contains(&name.as_str()))
        .map(|name| {
            let hint = match crate::error::closest(&name, KNOWN.iter().copied()) {
                Some(known) => format!("; did you mean {known}?"),
                None => format!("; the variables net reads are {}", KNOWN[..19].join(", ")),
            };
            format!(
                "the environment variable {name} is not one net reads, so it has no effect{hint}"
            )
        })
        .collect();
    warnings.sort();
    warnings
}

/// Warns about unknown `NET_*` variables, once per process.
pub(crate) fn warn_unknown_once(vars: impl IntoIterator<Item = (OsString, OsString)>) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for warning in unknown(vars) {
            crate::logging::warn_user(&warning);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(names: &[&str]) -> Vec<(OsString, OsString)> {
        names.iter().map(|n| (n.into(), "1".into())).collect()
    }

    #[test]
    fn unknown_variables_get_a_suggestion() {
        let warnings = unknown(vars(&["NET_PROT", "NET_PORT", "HOME", "NET_ZZZZZZZZZZZZ"]));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("NET_PROT") && warnings[0].contains("did you mean NET_PORT?"));
        assert!(warnings[1].contains("NET_ZZZZZZZZZZZZ") && warnings[1].contains("NET_TIMEOUT"));
    }
}
