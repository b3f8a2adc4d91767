//! The message of an unknown tag: the function asked for by its path, each function the
//! peer serves once (net's built-ins left out), a "did you mean", and how to link a
//! library crate whose functions the serving program left out.

use std::collections::{BTreeMap, BTreeSet};

use crate::id::{readable_tag, tag_path};

/// How many of the peer's functions the message lists before it says "and N more".
const LISTED: usize = 12;

/// The text after `INVALID_CONNECTION: `.
pub(super) fn message(peer: &str, tag: &str, available: &[String]) -> String {
    let functions = Functions::parse(available);
    let wanted = match tag_path(tag) {
        Some(path) => format!("{path} (tag {tag:?})"),
        None => format!("tagged {tag:?}"),
    };
    let mut text = format!("peer {peer} has no function {wanted}");
    if let Some(hint) = functions.did_you_mean(tag) {
        text.push_str(&format!("; did you mean {hint}"));
    }
    text.push_str(&format!("; it serves {}", functions.listing()));
    if let Some(link) = functions.unlinked_crate(tag) {
        text.push_str(&format!(
            ". If `{link}` is a library crate, the program on {peer} does not link it: a \
             binary that names nothing of a library crate leaves out its #[net::connect] \
             functions; add `use {link} as _;` to that program's main.rs"
        ));
    }
    text
}

/// The peer's functions, from the `tag (path)` entries of its answer.
struct Functions {
    /// Each of the program's own functions once: path to its custom tag, if it has one.
    own: BTreeMap<String, Option<String>>,
    /// How many of net's built-ins it serves.
    builtins: usize,
    /// The crates its functions come from (first segment of their paths).
    crates: BTreeSet<String>,
}

impl Functions {
    fn parse(available: &[String]) -> Functions {
        let mut own: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut builtins = BTreeSet::new();
        let mut crates = BTreeSet::new();
        for entry in available {
            // `tag (path)`; a peer of another kind may send bare tags.
            let (tag, path) = match entry.rsplit_once(" (") {
                Some((tag, path)) => (tag, path.trim_end_matches(')').to_owned()),
                None => (entry.as_str(), readable_tag(entry)),
            };
            if let Some(krate) = path.split("::").next().filter(|_| path.contains("::")) {
                crates.insert(krate.to_owned());
            }
            if crate::id::is_builtin_path(&path) {
                builtins.insert(path);
                continue;
            }
            let custom = tag_path(tag).is_none() && tag != path;
            let slot = own.entry(path).or_default();
            if custom {
                *slot = Some(tag.to_owned());
            }
        }
        Functions {
            own,
            builtins: builtins.len(),
            crates,
        }
    }

    /// `app::add, registry.get (store::get), ...` and net's built-ins by count.
    fn listing(&self) -> String {
        let mut names: Vec<String> = self
            .own
            .iter()
            .map(|(path, custom)| match custom {
                Some(tag) => format!("{tag:?} ({path})"),
                None => path.clone(),
            })
            .collect();
        let more = names.len().saturating_sub(LISTED);
        names.truncate(LISTED);
        let mut text = match names.len() {
            0 => "none of its program's own functions".to_owned(),
            _ => names.join(", "),
        };
        if more > 0 {
            text.push_str(&format!(" and {more} more"));
        }
        if self.builtins > 0 {
            text.push_str(&format!(" (besides net's {} built-ins)", self.builtins));
        }
        text
    }

    /// The closest of the peer's functions to what was asked for: the same name under
    /// another path first (programs that define one function in two places), then a
    /// near spelling of the path or custom tag.
    fn did_you_mean(&self, tag: &str) -> Option<String> {
        let wanted = readable_tag(tag);
        let name = wanted.rsplit("::").next().unwrap_or(&wanted);
        let call = |path: &str, custom: &Option<String>| match custom {
            Some(tag) => format!("{tag:?} ({path})"),
            None => path.to_owned(),
        };
        if wanted.contains("::") {
            let same_name: Vec<String> = self
                .own
                .iter()
                .filter(|(path, _)| path.rsplit("::").next() == Some(name))
                .map(|(path, custom)| call(path, custom))
                .collect();
            if !same_name.is_empty() {
                return Some(format!(
                    "{} (the same name under another path: a default tag is the function's \
                     path, so both programs must reach it by the same path; share it \
                     through a library crate, or give it a custom tag)",
                    same_name.join(" or ")
                ));
            }
        }
        let (best, score) = self
            .own
            .iter()
            .flat_map(|(path, custom)| {
                let mut names = vec![path.as_str()];
                names.extend(custom.as_deref());
                names.into_iter().map(move |n| (n, path, custom))
            })
            .map(|(n, path, custom)| (call(path, custom), similarity(&wanted, n)))
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        (score >= 0.7).then_some(best)
    }

    /// The crate of the path asked for, when none of the peer's functions comes from it.
    fn unlinked_crate(&self, tag: &str) -> Option<String> {
        let path = tag_path(tag)?;
        let krate = path.split("::").next()?.to_owned();
        (!self.crates.contains(&krate) && krate != "net").then_some(krate)
    }
}

/// How alike two names are, 0 to 1.
pub(crate) fn similarity(a: &str, b: &str) -> f64 {
    strsim::normalized_damerau_levenshtein(a, b)
}

/// The known name closest to `unknown`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(
    unknown: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (k, similarity(unknown, k)))
        .filter(|(_, score)| *score >= 0.6)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::default_tag;

    fn entry(path: &str) -> String {
        format!("{} ({path})", default_tag(path))
    }

    fn served() -> Vec<String> {
        vec![
            entry("net::builtins::info"),
            "info (net::builtins::info)".to_owned(),
            entry("net::builtins::null"),
            "null (net::builtins::null)".to_owned(),
            entry("server::add"),
            entry("server::store::get"),
            "registry.get (server::store::get)".to_owned(),
        ]
    }

    #[test]
    fn lists_each_function_once_without_the_builtins() {
        let text = message("p", "nope", &served());
        assert!(text.contains("has no function tagged \"nope\""), "{text}");
        assert!(
            text.contains("it serves server::add, \"registry.get\" (server::store::get) (besides net's 2 built-ins)"),
            "{text}"
        );
        assert!(!text.contains("did you mean"), "{text}");
    }

    #[test]
    fn suggests_near_names_and_the_same_name_elsewhere() {
        let text = message("p", &default_tag("server::ad"), &served());
        assert!(text.contains("no function server::ad (tag "), "{text}");
        assert!(text.contains("did you mean server::add"), "{text}");
        let text = message("p", "registry.gte", &served());
        assert!(text.contains("did you mean \"registry.get\""), "{text}");
        let text = message("p", &default_tag("client::add"), &served());
        assert!(
            text.contains("did you mean server::add (the same name"),
            "{text}"
        );
        assert!(text.contains("use client as _;"), "{text}");
    }

    #[test]
    fn says_how_to_link_a_library_crate() {
        let text = message("p", &default_tag("app::slow"), &served());
        assert!(text.contains("If `app` is a library crate"), "{text}");
        assert!(text.contains("add `use app as _;`"), "{text}");
        let text = message("p", &default_tag("server::slow"), &served());
        assert!(!text.contains("library crate"), "{text}");
    }

    #[test]
    fn closest_name() {
        let known = ["NET_PORT", "NET_PORT_RANGE", "NET_TIMEOUT"];
        assert_eq!(closest("NET_PROT", known), Some("NET_PORT"));
        assert_eq!(closest("NET_TIMOUT", known), Some("NET_TIMEOUT"));
        assert_eq!(closest("NET_BANANA", known), None);
    }
}
