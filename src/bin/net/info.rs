//! `net info PEER`: a peer's info, readable or as JSON.

use std::collections::BTreeMap;

use crate::args::InfoArgs;
use crate::{client_peer, output, target, Failure};

pub(crate) async fn run(args: InfoArgs) -> Result<(), Failure> {
    let me = client_peer().await?;
    let target = match target::resolve(&me, &args.peer).await {
        Ok(target) => target,
        Err(e) => {
            me.shutdown().await;
            return Err(e);
        }
    };
    let result = show(&me, target, args.json).await;
    me.shutdown().await;
    result
}

async fn show(me: &net::Peer, target: net::Target, json: bool) -> Result<(), Failure> {
    let info = net::info().on(&target).via(me).await?;
    if json {
        output::json(&info);
        return Ok(());
    }
    let functions: BTreeMap<String, String> = net::connections().on(&target).via(me).await?;
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    output::rows(&[
        ("id", info.id.to_string()),
        ("address", format!("{}:{}", info.host, info.port)),
        ("group", info.group.clone().unwrap_or_else(|| "-".into())),
        ("hub", yes_no(info.hub)),
        ("user", info.user.clone()),
        ("executable", info.executable.clone()),
        (
            "version",
            format!("{} (protocol {})", info.version, info.protocol),
        ),
        ("flags", info.flags.join(", ")),
        ("events", list_or_dash(&info.events)),
        ("subscriptions", list_or_dash(&info.subscriptions)),
        (
            "functions",
            format!(
                "{} of its own, {} in all with net's built-ins",
                info.functions().len(),
                functions_by_path(&functions).len()
            ),
        ),
    ]);
    // Each function once, by its shortest tag (a custom one when it has one); every tag
    // is in `--json` and `net call` accepts any of them, the path or the name.
    let rows: Vec<(&str, &str)> = functions_by_path(&functions)
        .into_iter()
        .map(|(path, tags)| {
            let tag = tags.iter().min_by_key(|t| t.len()).copied().unwrap_or("");
            (tag, path)
        })
        .collect();
    let width = rows.iter().map(|(tag, _)| tag.len()).max().unwrap_or(0);
    for (tag, path) in rows {
        println!("  {tag:<width$}  {path}");
    }
    Ok(())
}

fn list_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

/// Each function once, with every tag it answers to.
pub(crate) fn functions_by_path(functions: &BTreeMap<String, String>) -> BTreeMap<&str, Vec<&str>> {
    let mut by_path: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (tag, path) in functions {
        by_path.entry(path).or_default().push(tag);
    }
    by_path
}
