//! `net table NAME get|set|pop|keys|items|owners|members`: a replicated table from a
//! terminal, as a peer that has not joined it (it routes to the members); `net serve
//! --join NAME` makes a member.

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::{client_peer, output, Failure};

#[derive(Debug, Args)]
pub(crate) struct TableArgs {
    /// The table's name, as members joined it (`net serve --join NAME`).
    pub name: String,
    #[command(subcommand)]
    pub op: TableOp,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TableOp {
    /// Print a key's value as JSON (exit 1 if the key has none).
    Get {
        /// The key (text).
        key: String,
    },
    /// Set a key to a JSON value (a plain word that is not JSON is taken as a string).
    Set {
        /// The key (text).
        key: String,
        /// The value, as JSON.
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Remove a key and print the value it had (exit 1 if it had none).
    Pop {
        /// The key (text).
        key: String,
    },
    /// Print every key, one per line.
    Keys,
    /// Print every key with its value.
    Items {
        /// Print one JSON object instead (binary keys as 0x... hex).
        #[arg(long)]
        json: bool,
    },
    /// Print the members holding a key, primary first.
    Owners {
        /// The key (text).
        key: String,
    },
    /// Print the table's members.
    Members,
}

pub(crate) async fn run(args: TableArgs) -> Result<(), Failure> {
    let me = client_peer().await?;
    let result = op(&me, args).await;
    me.shutdown().await;
    result
}

async fn op(me: &net::Peer, args: TableArgs) -> Result<(), Failure> {
    let name = args.name;
    let table = me.table::<Value>(name.as_str());
    let missing = |key: &str| Failure::Error(format!("table {name:?} has no key {key:?}"));
    match args.op {
        TableOp::Get { key } => match table.get(key.as_str()).await? {
            Some(value) => output::json(&value),
            None => return Err(missing(&key)),
        },
        TableOp::Set { key, value } => {
            let value = crate::call::json_or_word("the value", &value)?;
            table.set(key, value).await?;
        }
        TableOp::Pop { key } => match table.pop(key.as_str()).await? {
            Some(value) => output::json(&value),
            None => return Err(missing(&key)),
        },
        TableOp::Keys => {
            for key in table.keys().await? {
                println!("{}", shown(&key));
            }
        }
        TableOp::Items { json } => {
            let items = table.items().await?;
            if json {
                let object: serde_json::Map<String, Value> =
                    items.into_iter().map(|(k, v)| (shown(&k), v)).collect();
                output::json(&object);
            } else {
                let rows: Vec<[String; 2]> = items
                    .iter()
                    .map(|(k, v)| [shown(k), v.to_string()])
                    .collect();
                output::table(&["KEY", "VALUE"], &rows);
            }
        }
        TableOp::Owners { key } => members(table.owners(key).await?),
        TableOp::Members => members(table.members().await?),
    }
    Ok(())
}

/// A key as a person reads it: its text, or 0x... hex for bytes that are not UTF-8.
fn shown(key: &net::TableKey) -> String {
    match key.as_str() {
        Some(text) => text.to_owned(),
        None => key.to_string(),
    }
}

fn members(list: Vec<net::TableMember>) {
    let rows: Vec<[String; 2]> = list
        .iter()
        .map(|m| [m.id.clone(), m.addr.to_string()])
        .collect();
    output::table(&["MEMBER", "ADDRESS"], &rows);
}

/// `net serve --join NAME...`: joins each table and says so, with its member count.
pub(crate) async fn join_all(peer: &net::Peer, names: &[String]) -> Result<(), Failure> {
    for name in names {
        let table = peer.table::<Value>(name.as_str());
        table.join().await?;
        let members = table.members().await?.len();
        println!("joined table {name:?}: {members} member(s)");
    }
    Ok(())
}
