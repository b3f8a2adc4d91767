//! Printing: JSON for scripts, aligned text for people.

use serde::Serialize;

/// Prints a value as pretty JSON on stdout.
pub(crate) fn json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("net: cannot print the result as JSON: {e}"),
    }
}

/// Prints `label  value` rows with the labels aligned.
pub(crate) fn rows(rows: &[(&str, String)]) {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    for (label, value) in rows {
        println!("{label:<width$}  {value}");
    }
}
