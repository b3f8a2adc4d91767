//! The Python of the app-net virtualenv, for the tests against real app-net 0.6.2.

use std::path::{Path, PathBuf};

/// The Python of the app-net virtualenv that `tests/python/setup.sh` makes, or `None`
/// after a loud SKIP line naming `test` (written to stderr past the harness's capture, so
/// it shows). With `NET_REQUIRE_APPNET=1` (CI) a missing venv fails the test instead.
pub fn appnet_python(test: &str) -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/appnet-venv/bin/python");
    if python.exists() {
        return Some(python);
    }
    if std::env::var_os("NET_REQUIRE_APPNET").is_some_and(|v| v == "1") {
        panic!(
            "NET_REQUIRE_APPNET=1 but there is no app-net venv at {}; run `bash \
             tests/python/setup.sh`",
            python.display()
        );
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n=== SKIP {test}: no app-net venv at {}; run `bash tests/python/setup.sh` ===\n",
        python.display()
    );
    None
}

/// The directory of the Python helpers (tests/python).
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}
