//! The paths into the crate itself that a Rust source names in code: `crate::..`,
//! `$crate::..` and, where lib.rs says `extern crate self as NAME`, `NAME::..`, with
//! grouped imports (`use crate::{a::X, b::{c, d}}`) split into one path each. Comments, doc
//! comments, and string, byte-string, raw-string and char literals are skipped.

/// One path into the crate, as the source names it.
#[derive(Debug, Clone, PartialEq)]
pub struct CratePath {
    /// The line (1-based) of the segment after the head.
    pub line: usize,
    /// The segment after the head: the crate's top-level module or item it reaches.
    pub first: String,
    /// The whole path as written, e.g. `crate::peer::Peer`.
    pub text: String,
}

/// What a source's `use` declaration brings in: the full path (leading `::` kept as a
/// segment), and the name it binds (`as` or the last segment; `*` for a glob).
#[derive(Debug, Clone, PartialEq)]
pub struct UseLeaf {
    /// Its segments, e.g. `["peer", "Peer"]`.
    pub path: Vec<String>,
    /// The name it binds.
    pub binds: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Colons,
    Open,
    Close,
    Comma,
    Semi,
    Dollar,
    Star,
    Other(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Every path into the crate in `source`. `alias` is the name lib.rs gives the crate with
/// `extern crate self as NAME`, if any.
pub fn crate_paths(source: &str, alias: Option<&str>) -> Vec<CratePath> {
    let toks = tokens(source);
    let is_head = |name: &str| name == "crate" || Some(name) == alias;
    let mut found = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if toks[i].tok == Tok::Ident("use".into()) && !next_is(&toks, i + 1, '<') {
            let (leaves, next) = use_tree(&toks, i + 1);
            for leaf in leaves {
                // `use crate::..`, `use $crate::..`, `use net::..` and `use ::net::..`.
                let segs: Vec<&(String, usize)> = leaf
                    .iter()
                    .take_while(|(s, _)| s != "as")
                    .filter(|(s, _)| s != "::" && s != "$")
                    .collect();
                if segs.len() >= 2 && is_head(&segs[0].0) {
                    // `use crate::peer::{self, Peer}` names `crate::peer` itself.
                    let named = match segs.last() {
                        Some((s, _)) if s == "self" => &segs[..segs.len() - 1],
                        _ => &segs[..],
                    };
                    found.push(CratePath {
                        line: segs[1].1,
                        first: segs[1].0.clone(),
                        text: join(named.iter().map(|(s, _)| s.as_str())),
                    });
                }
            }
            i = next;
            continue;
        }
        if let Tok::Ident(name) = &toks[i].tok {
            let after_colons = i > 0 && toks[i - 1].tok == Tok::Colons;
            // `a::net::x` is someone else's `net`; a leading `::net::x` is the crate.
            let mid_path = after_colons
                && i >= 2
                && !matches!(
                    toks[i - 2].tok,
                    Tok::Open | Tok::Comma | Tok::Semi | Tok::Other(_)
                );
            if is_head(name)
                && !mid_path
                && matches!(toks.get(i + 1), Some(t) if t.tok == Tok::Colons)
            {
                let mut segs = vec![name.clone()];
                let mut j = i + 2;
                let mut line = None;
                while let Some(Token {
                    tok: Tok::Ident(seg),
                    line: l,
                }) = toks.get(j)
                {
                    line.get_or_insert(*l);
                    segs.push(seg.clone());
                    if !matches!(toks.get(j + 1), Some(t) if t.tok == Tok::Colons) {
                        break;
                    }
                    j += 2;
                }
                if segs.len() >= 2 {
                    found.push(CratePath {
                        line: line.unwrap_or(toks[i].line),
                        first: segs[1].clone(),
                        text: join(segs.iter().map(String::as_str)),
                    });
                }
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    found
}

/// What `source`'s `use` declarations bring into scope (for lib.rs: what `crate::NAME`
/// can mean besides a module).
pub fn use_leaves(source: &str) -> Vec<UseLeaf> {
    let toks = tokens(source);
    let mut leaves = Vec::new();
    for i in 0..toks.len() {
        if toks[i].tok == Tok::Ident("use".into()) && !next_is(&toks, i + 1, '<') {
            for leaf in use_tree(&toks, i + 1).0 {
                let mut path: Vec<String> = leaf.into_iter().map(|(s, _)| s).collect();
                let binds = match path.iter().position(|s| s == "as") {
                    Some(at) => {
                        let name = path.get(at + 1).cloned().unwrap_or_default();
                        path.truncate(at);
                        name
                    }
                    None => path.last().cloned().unwrap_or_default(),
                };
                // `use a::b::{self}` binds `b`.
                let binds = if binds == "self" {
                    path.pop();
                    path.last().cloned().unwrap_or_default()
                } else {
                    binds
                };
                leaves.push(UseLeaf { path, binds });
            }
        }
    }
    leaves
}

/// The name lib.rs gives the crate with `extern crate self as NAME;`.
pub fn self_alias(source: &str) -> Option<String> {
    let toks = tokens(source);
    toks.windows(5).find_map(
        |w| match [&w[0].tok, &w[1].tok, &w[2].tok, &w[3].tok, &w[4].tok] {
            [Tok::Ident(e), Tok::Ident(c), Tok::Ident(s), Tok::Ident(a), Tok::Ident(name)]
                if e == "extern" && c == "crate" && s == "self" && a == "as" =>
            {
                Some(name.clone())
            }
            _ => None,
        },
    )
}

fn join<'a>(segs: impl Iterator<Item = &'a str>) -> String {
    segs.collect::<Vec<_>>().join("::")
}

fn next_is(toks: &[Token], i: usize, c: char) -> bool {
    matches!(toks.get(i), Some(t) if t.tok == Tok::Other(c))
}

/// The leaves of the use tree starting at `toks[i]`, each a list of (segment, line), with
/// `as NAME` kept as two segments; and the index after the declaration's `;`.
fn use_tree(toks: &[Token], i: usize) -> (Vec<Vec<(String, usize)>>, usize) {
    let mut leaves = Vec::new();
    let end = tree(toks, i, &[], &mut leaves);
    // Skip to the end of the declaration, whatever the tree looked like.
    let mut j = end;
    while j < toks.len() && toks[j].tok != Tok::Semi {
        j += 1;
    }
    (leaves, j + 1)
}

/// One use tree under `prefix`; returns the index after it.
fn tree(
    toks: &[Token],
    mut i: usize,
    prefix: &[(String, usize)],
    leaves: &mut Vec<Vec<(String, usize)>>,
) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match toks.get(i).map(|t| (&t.tok, t.line)) {
            Some((Tok::Colons, line)) => {
                if path.len() == prefix.len() {
                    path.push(("::".into(), line));
                }
                i += 1;
            }
            Some((Tok::Dollar, line)) => {
                path.push(("$".into(), line));
                i += 1;
            }
            Some((Tok::Ident(seg), line)) => {
                path.push((seg.clone(), line));
                i += 1;
                match toks.get(i).map(|t| &t.tok) {
                    Some(Tok::Colons) => i += 1,
                    Some(Tok::Ident(a)) if a == "as" => {
                        if let Some(Token {
                            tok: Tok::Ident(name),
                            line,
                        }) = toks.get(i + 1)
                        {
                            path.push(("as".into(), *line));
                            path.push((name.clone(), *line));
                            i += 2;
                        }
                        leaves.push(path);
                        return i;
                    }
                    _ => {
                        leaves.push(path);
                        return i;
                    }
                }
            }
            Some((Tok::Star, line)) => {
                path.push(("*".into(), line));
                leaves.push(path);
                return i + 1;
            }
            Some((Tok::Open, _)) => {
                i += 1;
                loop {
                    match toks.get(i).map(|t| &t.tok) {
                        None => return i,
                        Some(Tok::Close) => return i + 1,
                        Some(Tok::Comma) => i += 1,
                        Some(_) => i = tree(toks, i, &path, leaves),
                    }
                }
            }
            _ => return i,
        }
    }
}

/// The tokens of `source` that paths are made of, with comments and literals dropped.
fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut toks = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied();
    while let Some(c) = at(i) {
        let start_line = line;
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '/' if at(i + 1) == Some('/') => {
                while at(i).is_some_and(|c| c != '\n') {
                    i += 1;
                }
            }
            '/' if at(i + 1) == Some('*') => {
                // Block comments nest.
                let mut depth = 0;
                while let Some(c) = at(i) {
                    if c == '/' && at(i + 1) == Some('*') {
                        depth += 1;
                        i += 2;
                    } else if c == '*' && at(i + 1) == Some('/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        line += usize::from(c == '\n');
                        i += 1;
                    }
                }
            }
            '"' => i = skip_string(&chars, i + 1, &mut line),
            '\'' => i = skip_quote(&chars, i),
            c if c.is_alphabetic() || c == '_' => {
                let begin = i;
                while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    i += 1;
                }
                let word: String = chars[begin..i].iter().collect();
                match (word.as_str(), at(i)) {
                    ("b" | "c", Some('"')) => i = skip_string(&chars, i + 1, &mut line),
                    ("b", Some('\'')) => i = skip_quote(&chars, i),
                    ("r" | "br" | "cr", Some('"' | '#')) if raw_string_at(&chars, i) => {
                        i = skip_raw_string(&chars, i, &mut line);
                    }
                    ("r", Some('#')) => {
                        // A raw identifier: `r#type` is the identifier `type`.
                        let begin = i + 1;
                        i = begin;
                        while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                            i += 1;
                        }
                        let word = chars[begin..i].iter().collect();
                        toks.push(Token {
                            tok: Tok::Ident(word),
                            line,
                        });
                    }
                    _ => toks.push(Token {
                        tok: Tok::Ident(word),
                        line,
                    }),
                }
            }
            c if c.is_ascii_digit() => {
                while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    i += 1;
                }
            }
            ':' if at(i + 1) == Some(':') => {
                toks.push(Token {
                    tok: Tok::Colons,
                    line,
                });
                i += 2;
            }
            c => {
                let tok = match c {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    ',' => Tok::Comma,
                    ';' => Tok::Semi,
                    '$' => Tok::Dollar,
                    '*' => Tok::Star,
                    c => Tok::Other(c),
                };
                toks.push(Token {
                    tok,
                    line: start_line,
                });
                i += 1;
            }
        }
    }
    toks
}

/// Past the end of a string whose opening quote is just before `i` (escapes honoured).
fn skip_string(chars: &[char], mut i: usize, line: &mut usize) -> usize {
    while let Some(&c) = chars.get(i) {
        match c {
            '\\' => {
                if chars.get(i + 1) == Some(&'\n') {
                    *line += 1;
                }
                i += 2;
            }
            '"' => return i + 1,
            c => {
                *line += usize::from(c == '\n');
                i += 1;
            }
        }
    }
    i
}

/// Whether `chars[i..]` (after an `r`, `br` or `cr`) opens a raw string: `#`s, then `"`.
fn raw_string_at(chars: &[char], mut i: usize) -> bool {
    while chars.get(i) == Some(&'#') {
        i += 1;
    }
    chars.get(i) == Some(&'"')
}

/// Past the end of a raw string whose `#`s (or quote) start at `i`.
fn skip_raw_string(chars: &[char], mut i: usize, line: &mut usize) -> usize {
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    i += 1; // the opening quote
    while let Some(&c) = chars.get(i) {
        if c == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        *line += usize::from(c == '\n');
        i += 1;
    }
    i
}

/// Past a char literal (`'x'`, `'\n'`, `'\u{1F600}'`) starting at the quote at `i`, or
/// just past the quote of a lifetime or label (`'a`, `'outer:`).
fn skip_quote(chars: &[char], i: usize) -> usize {
    match (chars.get(i + 1), chars.get(i + 2)) {
        (Some('\\'), _) => {
            let mut j = i + 3;
            while chars.get(j).is_some_and(|&c| c != '\'') {
                j += 1;
            }
            j + 1
        }
        (Some(_), Some('\'')) => i + 3,
        _ => i + 1,
    }
}
