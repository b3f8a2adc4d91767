//! The layer table of the crate docs: under `# Layout` in lib.rs's `//!` lines, a markdown
//! table `| layer | modules | owns |`, lowest layer first, whose second column names each
//! layer's top-level modules in backticks.

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Its name, from the first column.
    pub name: String,
    /// Its top-level modules, the backticked names of the second column.
    pub modules: Vec<String>,
}

/// The table's layers, lowest first, or what is wrong with it.
pub fn layers(lib_rs: &str) -> Result<Vec<Layer>, String> {
    let docs: Vec<&str> = lib_rs
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end())
        .collect();
    let start = docs
        .iter()
        .position(|l| *l == "# Layout")
        .ok_or("its crate docs have no `//! # Layout` section")?;
    let section: Vec<&str> = docs[start + 1..]
        .iter()
        .take_while(|l| !l.starts_with("# "))
        .copied()
        .collect();
    let header = section
        .iter()
        .position(|l| cells(l) == ["layer", "modules", "owns"])
        .ok_or("its `# Layout` section has no table headed `| layer | modules | owns |`")?;
    let separator = section.get(header + 1).is_some_and(|l| {
        l.starts_with('|')
            && cells(l)
                .iter()
                .all(|c| !c.is_empty() && c.chars().all(|ch| ch == '-' || ch == ':'))
    });
    if !separator {
        return Err("the layer table's header is not followed by `| --- | --- | --- |`".into());
    }
    let mut layers: Vec<Layer> = Vec::new();
    for row in section[header + 2..]
        .iter()
        .take_while(|l| l.starts_with('|'))
    {
        let cells = cells(row);
        let name = cells.first().cloned().unwrap_or_default();
        let modules: Vec<String> = cells
            .get(1)
            .map(|c| c.split('`').skip(1).step_by(2).map(str::to_owned).collect())
            .unwrap_or_default();
        if name.is_empty() || modules.is_empty() {
            return Err(format!(
                "the layer table's row {row:?} needs a layer name and at least one `module`"
            ));
        }
        if layers.iter().any(|l| l.name == name) {
            return Err(format!("the layer table names layer `{name}` twice"));
        }
        for module in &modules {
            if let Some(other) = layers.iter().find(|l| l.modules.contains(module)) {
                return Err(format!(
                    "the layer table puts `{module}` in two layers, `{}` and `{name}`",
                    other.name
                ));
            }
        }
        layers.push(Layer { name, modules });
    }
    if layers.is_empty() {
        return Err("the layer table has no rows".into());
    }
    Ok(layers)
}

/// The cells of a markdown table row, trimmed.
fn cells(row: &str) -> Vec<String> {
    let row = row.trim();
    let Some(inner) = row.strip_prefix('|') else {
        return Vec::new();
    };
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    inner.split('|').map(|c| c.trim().to_owned()).collect()
}
