//! The check itself: each source file's module and layer, what each of its paths into the
//! crate reaches, and every reach to a higher layer that no exception allows. Also the
//! table's agreement with the real modules, and (while there is no table) the import
//! circles between today's modules.

use std::collections::{BTreeMap, BTreeSet};

use super::lex::{crate_paths, self_alias, use_leaves, CratePath};
use super::table::{layers, Layer};

/// One source file of the library.
pub struct Source {
    /// Its path under net/src, `/`-separated (`peer/pool.rs`).
    pub path: String,
    /// Its text.
    pub text: String,
}

/// An allowed reach upwards: (file under net/src, module it reaches, why).
pub type Exception = (&'static str, &'static str, &'static str);

/// What a path's first segment after `crate::` is.
#[derive(Debug, Clone, PartialEq)]
enum Reach {
    /// A top-level module.
    Module(String),
    /// An item of lib.rs itself (the root layer).
    Root,
    /// Another crate, re-exported by lib.rs: no layer of ours.
    External,
}

/// Checks `sources` (all of net/src) against the layer table of their lib.rs; the error
/// is the whole failure report.
pub fn check(sources: &[Source], exceptions: &[Exception]) -> Result<(), String> {
    let lib = sources
        .iter()
        .find(|s| s.path == "lib.rs")
        .ok_or("net/src has no lib.rs")?;
    let modules: BTreeSet<String> = sources
        .iter()
        .filter(|s| s.path != "lib.rs")
        .map(|s| module_of(&s.path))
        .collect();
    let alias = self_alias(&lib.text);
    let roots = root_bindings(&lib.text, alias.as_deref(), &modules);
    let resolve = |path: &CratePath| -> Reach {
        if modules.contains(&path.first) {
            Reach::Module(path.first.clone())
        } else {
            roots.get(&path.first).cloned().unwrap_or(Reach::Root)
        }
    };
    let paths: Vec<(&Source, Vec<CratePath>)> = sources
        .iter()
        .map(|s| (s, crate_paths(&s.text, alias.as_deref())))
        .collect();

    let table = match layers(&lib.text) {
        Ok(table) => table,
        Err(why) => return Err(no_table(&why, &modules, &paths, &resolve)),
    };
    let layer_of = |module: &str| {
        table
            .iter()
            .position(|l| l.modules.iter().any(|m| m == module))
    };
    let top = table.len() - 1;

    let mut table_problems = Vec::new();
    for module in &modules {
        if layer_of(module).is_none() {
            table_problems.push(format!(
                "`{module}` (net/src/{module}) is in no layer of the table"
            ));
        }
    }
    for layer in &table {
        for module in layer.modules.iter().filter(|m| !modules.contains(*m)) {
            table_problems.push(format!(
                "layer `{}` lists `{module}`, but net/src has no {module}.rs or {module}/",
                layer.name
            ));
        }
    }

    let mut used = vec![false; exceptions.len()];
    let mut reaches = Vec::new();
    for (source, found) in &paths {
        let own = module_of(&source.path);
        let Some(own_layer) = (if source.path == "lib.rs" {
            Some(top)
        } else {
            layer_of(&own)
        }) else {
            continue; // reported above
        };
        for path in found {
            let (target, target_layer) = match resolve(path) {
                Reach::External => continue,
                Reach::Module(m) if m == own => continue,
                Reach::Module(m) => match layer_of(&m) {
                    Some(layer) => (m, layer),
                    None => continue,
                },
                Reach::Root => ("lib.rs".to_owned(), top),
            };
            if target_layer <= own_layer {
                continue;
            }
            let allowed = exceptions.iter().position(|(file, module, _)| {
                *file == source.path && (*module == target || *module == path.first)
            });
            if let Some(k) = allowed {
                used[k] = true;
                continue;
            }
            reaches.push(format!(
                "net/src/{}:{}: `{}` reaches up from layer `{}` ({}) to layer `{}` ({})",
                source.path,
                path.line,
                path.text,
                table[own_layer].name,
                own,
                table[target_layer].name,
                target
            ));
        }
    }
    let stale: Vec<String> = exceptions
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|((file, module, why), _)| {
            format!(
                "the exception ({file:?}, {module:?}, {why:?}) allows nothing any more: \
                 remove it from EXCEPTIONS"
            )
        })
        .collect();
    if table_problems.is_empty() && reaches.is_empty() && stale.is_empty() {
        return Ok(());
    }
    Err(report(&table, &table_problems, &reaches, &stale))
}

/// The top-level module of a file under net/src: `peer/pool.rs` -> `peer`.
pub fn module_of(path: &str) -> String {
    let first = path.split('/').next().unwrap_or(path);
    first.strip_suffix(".rs").unwrap_or(first).to_owned()
}

/// What `crate::NAME` means for the names lib.rs's `use` declarations bind.
fn root_bindings(
    lib_rs: &str,
    alias: Option<&str>,
    modules: &BTreeSet<String>,
) -> BTreeMap<String, Reach> {
    let mut roots = BTreeMap::new();
    for leaf in use_leaves(lib_rs) {
        if leaf.binds == "*" || leaf.binds.is_empty() {
            continue;
        }
        let mut segs: Vec<&str> = leaf.path.iter().map(String::as_str).collect();
        let leading = segs.first() == Some(&"::");
        if leading {
            segs.remove(0);
        }
        let ours = matches!(segs.first(), Some(&"crate") | Some(&"self"))
            || (segs.first().copied() == alias && alias.is_some());
        if ours {
            segs.remove(0);
        }
        let reach = match segs.first() {
            Some(first) if (ours || !leading) && modules.contains(*first) => {
                Reach::Module((*first).to_owned())
            }
            _ if ours => Reach::Root,
            _ => Reach::External,
        };
        roots.insert(leaf.binds, reach);
    }
    roots
}

fn report(
    table: &[Layer],
    table_problems: &[String],
    reaches: &[String],
    stale: &[String],
) -> String {
    let order: Vec<&str> = table.iter().map(|l| l.name.as_str()).collect();
    let mut out = format!(
        "net/src breaks its layers (the table under `# Layout` in net/src/lib.rs, lowest \
         first: {}):\n",
        order.join(" < ")
    );
    for line in table_problems.iter().chain(reaches).chain(stale) {
        out.push_str(&format!("  {line}\n"));
    }
    if !table_problems.is_empty() {
        out.push_str(
            "The table must describe the real layers: every top-level module of net/src in \
             exactly one row, and no other names.\n",
        );
    }
    if !reaches.is_empty() {
        out.push_str(
            "A module may use its own layer and the layers below it. Move what it needs down \
             a layer, send the news up over the peer's event bus, or, if the reach is \
             deliberate, add (file, module, reason) to EXCEPTIONS in tests/it/layering/mod.rs.\n",
        );
    }
    out
}

/// The report while lib.rs has no usable table: why, and today's import circles.
fn no_table(
    why: &str,
    modules: &BTreeSet<String>,
    paths: &[(&Source, Vec<CratePath>)],
    resolve: &dyn Fn(&CratePath) -> Reach,
) -> String {
    // module -> module it reaches -> where first.
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (source, found) in paths {
        let own = module_of(&source.path);
        if source.path == "lib.rs" {
            continue;
        }
        for path in found {
            if let Reach::Module(m) = resolve(path) {
                if m != own {
                    edges
                        .entry(own.clone())
                        .or_default()
                        .entry(m)
                        .or_insert_with(|| {
                            format!("net/src/{}:{} `{}`", source.path, path.line, path.text)
                        });
                }
            }
        }
    }
    let mut out = format!(
        "net/src/lib.rs has no layer table: {why}. Write it in the crate docs as \
         `//! # Layout` with a `| layer | modules | owns |` table, lowest layer first, \
         each row naming its modules in backticks (see tests/it/layering/mod.rs).\n\
         Today's {} top-level modules: {}\n",
        modules.len(),
        modules.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    for circle in circles(modules, &edges) {
        out.push_str(&format!(
            "Import circle of {} modules: {}\n",
            circle.len(),
            circle.join(", ")
        ));
        for module in &circle {
            let within: Vec<String> = edges
                .get(module)
                .into_iter()
                .flatten()
                .filter(|(to, _)| circle.contains(to))
                .map(|(to, at)| format!("{to} ({at})"))
                .collect();
            out.push_str(&format!("  {module} -> {}\n", within.join(", ")));
        }
    }
    out
}

/// The strongly connected groups of more than one module (Tarjan's algorithm), each sorted.
fn circles(
    modules: &BTreeSet<String>,
    edges: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let edges = s.edges;
        for w in edges.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                group.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.found.push(group);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in modules {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found.sort();
    state.found
}
