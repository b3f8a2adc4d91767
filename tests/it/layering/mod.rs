//! The library keeps its layers: no module of net/src names a module of a layer above its
//! own. The layers are written once, in the crate docs of net/src/lib.rs, as
//!
//! ```text
//! //! # Layout
//! //!
//! //! | layer | modules | owns |
//! //! | --- | --- | --- |
//! //! | base | `error`, `config`, `id` | ... |
//! //! | wire | `wire` | ... |
//! //! | root | `start`, `__private` | ... |
//! ```
//!
//! lowest layer first; lib.rs itself is the top layer. A file's module is the first
//! component of its path (`peer/pool.rs` is `peer`). Every path into the crate in code
//! (`crate::a::X`, `use crate::{a::X, b::{c, d}}`, `$crate::..`, and `net::..` through
//! lib.rs's `extern crate self as net`; not in comments or literals, test modules
//! included) reaches the module its first segment names, or, for a name lib.rs
//! re-exports, the module it comes from. Reaching the same layer or a lower one is
//! fine; a higher one fails, unless [`EXCEPTIONS`] allows it. The table must name
//! exactly the top-level modules there are.

mod check;
mod lex;
mod table;

use std::path::{Path, PathBuf};

use check::{check, Exception, Source};

/// The upward reaches the design allows, each with its reason: (file under net/src, the
/// module it reaches, why).
const EXCEPTIONS: &[Exception] = &[(
    "peer/default.rs",
    "start",
    "the lazy start of the process-wide peer",
)];

#[test]
fn the_library_imports_only_from_its_own_layer_and_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("net/src");
    if let Err(report) = check(&sources(&src), EXCEPTIONS) {
        panic!("{report}");
    }
}

/// Every `.rs` file under `dir`, with its path relative to it, sorted.
fn sources(dir: &Path) -> Vec<Source> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let relative = file.strip_prefix(dir).expect("found under dir");
            let path = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
            Source { path, text }
        })
        .collect()
}

/// The checker on small made-up crates.
mod fixtures {
    use super::check::{check, module_of, Exception, Source};
    use super::lex::{crate_paths, CratePath};
    use super::table::layers;

    const TABLE: &str = "\
//! A crate.
//!
//! # Layout
//!
//! | layer | modules | owns |
//! | --- | --- | --- |
//! | base | `error`, `config` | errors and settings |
//! | link | `link` | streams |
//! | peer | `peer` | the handle |
//! | root | `start` | start and stop |
//!
//! # Next section
extern crate self as net;
mod config;
mod error;
mod link;
mod peer;
mod start;
pub use peer::Peer;
pub use error::{Error, Result as NetResult};
pub use net_macros::connect;
pub const VERSION: &str = \"0\";
";

    /// A crate of the four layers above, with `extra` files (path, text) added to or
    /// replacing the plain ones.
    fn crate_with(extra: &[(&str, &str)]) -> Vec<Source> {
        let mut files: Vec<(String, String)> = [
            ("lib.rs", TABLE),
            ("config.rs", "use crate::error::Error;"),
            ("error.rs", "pub struct Error;"),
            ("link/mod.rs", "use crate::error::Error;"),
            ("peer/mod.rs", "use crate::link::Link;"),
            ("start.rs", "use crate::peer::Peer;"),
        ]
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
        for (path, text) in extra {
            files.retain(|(p, _)| p != path);
            files.push((path.to_string(), text.to_string()));
        }
        files
            .into_iter()
            .map(|(path, text)| Source { path, text })
            .collect()
    }

    fn fails(sources: &[Source], exceptions: &[Exception]) -> String {
        check(sources, exceptions).expect_err("the check should fail")
    }

    fn firsts(paths: &[CratePath]) -> Vec<(usize, &str)> {
        paths.iter().map(|p| (p.line, p.first.as_str())).collect()
    }

    #[test]
    fn a_layered_crate_passes() {
        check(&crate_with(&[]), &[]).unwrap();
    }

    #[test]
    fn the_table_is_read_lowest_layer_first() {
        let table = layers(TABLE).unwrap();
        let names: Vec<&str> = table.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["base", "link", "peer", "root"]);
        assert_eq!(table[0].modules, ["error", "config"]);
        let err = layers("//! # Layout\n//!\n//! | layer | mods |\n").unwrap_err();
        assert!(err.contains("| layer | modules | owns |"), "{err}");
        let err = layers("//! # Layout\n//! | layer | modules | owns |\n//! | --- | --- | --- |\n//! | a | `x` | |\n//! | b | `x` | |\n").unwrap_err();
        assert!(err.contains("`x` in two layers"), "{err}");
        assert!(layers("//! # Tour\n").unwrap_err().contains("# Layout"));
    }

    #[test]
    fn a_file_belongs_to_the_first_component_of_its_path() {
        assert_eq!(module_of("peer/pool.rs"), "peer");
        assert_eq!(module_of("error.rs"), "error");
        assert_eq!(module_of("discovery/mdns/browse.rs"), "discovery");
    }

    #[test]
    fn grouped_and_nested_imports_name_each_module() {
        let source = "use crate::{\n    error::Error,\n    link::{Link, frame::{Frame}},\n    {peer::{self, Peer}},\n};\nuse crate::config as settings;\n";
        let paths = crate_paths(source, None);
        assert_eq!(
            firsts(&paths),
            [
                (2, "error"),
                (3, "link"),
                (3, "link"),
                (4, "peer"),
                (4, "peer"),
                (6, "config")
            ]
        );
        assert_eq!(paths[2].text, "crate::link::frame::Frame");
        assert_eq!(paths[3].text, "crate::peer");
        assert_eq!(paths[5].text, "crate::config");
    }

    #[test]
    fn paths_in_code_count_and_comments_and_literals_do_not() {
        let source = r####"
// use crate::peer::Peer;
/// Calls `crate::peer::Peer::start`.
//! crate::peer
/* crate::peer /* nested crate::peer */ still a comment crate::peer */
fn f<'a>(x: &'a str) -> &'a str {
    let _ = "crate::peer::Peer";
    let _ = r#"crate::peer "quoted" crate::peer"#;
    let _ = b"crate::peer";
    let _ = ('"', '\'', b'"');
    let _ = "escaped \" crate::peer";
    'outer: loop { break 'outer; }
    crate::link::open(x)
}
pub(crate) fn g() -> crate::error::Error { $crate::config::get() }
"####;
        let paths = crate_paths(source, None);
        assert_eq!(
            firsts(&paths),
            [(13, "link"), (15, "error"), (15, "config")]
        );
    }

    #[test]
    fn the_crate_by_its_own_name_counts_and_another_crates_module_does_not() {
        let source = "use std::net::SocketAddr;\nuse std::{io, net::Ipv4Addr};\n#[net::connect]\nfn f(c: net::peer::Caller) -> tokio::net::TcpStream { ::net::link::x() }\n";
        let paths = crate_paths(source, Some("net"));
        assert_eq!(firsts(&paths), [(3, "connect"), (4, "peer"), (4, "link")]);
    }

    #[test]
    fn an_upward_import_fails_naming_file_line_path_and_layers() {
        let sources = crate_with(&[(
            "link/pool.rs",
            "\n\nuse crate::{error::Error, peer::Peer};\n",
        )]);
        let report = fails(&sources, &[]);
        assert!(
            report.contains(
                "net/src/link/pool.rs:3: `crate::peer::Peer` reaches up from layer `link` \
                 (link) to layer `peer` (peer)"
            ),
            "{report}"
        );
        assert!(!report.contains("crate::error::Error"), "{report}");
        assert!(report.contains("EXCEPTIONS"), "{report}");
        assert!(report.contains("base < link < peer < root"), "{report}");
    }

    #[test]
    fn a_reach_through_a_re_export_or_a_root_item_counts() {
        let sources = crate_with(&[(
            "link/mod.rs",
            "use crate::{NetResult, Peer};\nfn v() -> &'static str { crate::VERSION }\n#[crate::connect] fn f() {}\n",
        )]);
        let report = fails(&sources, &[]);
        assert!(
            report.contains("link/mod.rs:1: `crate::Peer` reaches up"),
            "{report}"
        );
        assert!(report.contains("to layer `peer` (peer)"), "{report}");
        assert!(report.contains("to layer `root` (lib.rs)"), "{report}");
        assert!(!report.contains("NetResult"), "from error, below: {report}");
        assert!(!report.contains("connect"), "another crate's: {report}");
    }

    #[test]
    fn same_layer_and_downward_reaches_pass() {
        let sources = crate_with(&[
            ("error.rs", "use crate::config::Config;"),
            ("config.rs", "use crate::error::Error;"),
            (
                "peer/mod.rs",
                "use crate::{error::Error, link::Link, peer::Inner};",
            ),
        ]);
        check(&sources, &[]).unwrap();
    }

    #[test]
    fn an_exception_allows_its_one_reach() {
        let default = ("peer/default.rs", "fn lazy() { crate::start::start(); }");
        let exception: &[Exception] = &[("peer/default.rs", "start", "the lazy start")];
        check(&crate_with(&[default]), exception).unwrap();
        // The same reach from another file is not allowed.
        let report = fails(
            &crate_with(&[default, ("peer/pool.rs", "use crate::start::start;")]),
            exception,
        );
        assert!(report.contains("net/src/peer/pool.rs:1"), "{report}");
        assert!(!report.contains("peer/default.rs:"), "{report}");
        // An exception nothing needs is stale.
        let report = fails(&crate_with(&[]), exception);
        assert!(report.contains("allows nothing any more"), "{report}");
    }

    #[test]
    fn the_table_must_name_the_real_modules() {
        let report = fails(
            &crate_with(&[("events/mod.rs", "use crate::peer::Peer;")]),
            &[],
        );
        assert!(
            report.contains("`events` (net/src/events) is in no layer of the table"),
            "{report}"
        );
        let sources: Vec<Source> = crate_with(&[])
            .into_iter()
            .filter(|s| s.path != "start.rs")
            .collect();
        let report = fails(&sources, &[]);
        assert!(
            report.contains("layer `root` lists `start`, but net/src has no start.rs or start/"),
            "{report}"
        );
        assert!(report.contains("every top-level module"), "{report}");
    }

    #[test]
    fn without_a_table_the_report_shows_the_import_circles() {
        let sources = crate_with(&[
            ("lib.rs", "//! A crate.\nmod error;\nmod link;\nmod peer;\n"),
            ("link/mod.rs", "use crate::peer::Peer;"),
            ("peer/mod.rs", "use crate::link::Link;"),
        ]);
        let report = fails(&sources, &[]);
        assert!(report.contains("no `//! # Layout` section"), "{report}");
        assert!(
            report.contains("Import circle of 2 modules: link, peer"),
            "{report}"
        );
        assert!(
            report.contains("link -> peer (net/src/link/mod.rs:1 `crate::peer::Peer`)"),
            "{report}"
        );
    }
}
