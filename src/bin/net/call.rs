//! `net call PEER TAG [ARG...]`: call any function by hand and print the result as JSON.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

use crate::args::CallArgs;
use crate::{client_peer, output, target, Failure};

pub(crate) async fn run(args: CallArgs) -> Result<(), Failure> {
    let call_args = arguments(&args)?;
    let me = client_peer().await?;
    let target = match target::resolve(&me, &args.peer).await {
        Ok(target) => target,
        Err(e) => {
            me.shutdown().await;
            return Err(e);
        }
    };
    let result = call(&me, target, &args, call_args).await;
    me.shutdown().await;
    result
}

async fn call(
    me: &net::Peer,
    target: net::Target,
    args: &CallArgs,
    call_args: Value,
) -> Result<(), Failure> {
    let tag = resolve_tag(me, &target, &args.tag).await?;
    let mut call = net::call_tag::<Value>(tag, call_args).on(&target).via(me);
    if let Some(timeout) = args.timeout {
        call = call.timeout(timeout);
    }
    let value = call.await?;
    output::json(&value);
    Ok(())
}

/// The call's arguments as one JSON array.
fn arguments(args: &CallArgs) -> Result<Value, Failure> {
    if let Some(text) = &args.args {
        return match serde_json::from_str(text) {
            Ok(Value::Array(values)) => Ok(Value::Array(values)),
            Ok(other) => Err(Failure::Error(format!(
                "--args must be a JSON array such as '[5, 10]', got {other}"
            ))),
            Err(e) => Err(Failure::Error(format!("--args is not valid JSON: {e}"))),
        };
    }
    args.arg
        .iter()
        .enumerate()
        .map(|(i, text)| argument(i + 1, text))
        .collect::<Result<Vec<Value>, Failure>>()
        .map(Value::Array)
}

/// One ARG: JSON, or a plain word taken as a string. Text that starts like a JSON object,
/// array or string but does not parse is a mistake to point out, not a string to send.
fn argument(position: usize, text: &str) -> Result<Value, Failure> {
    match serde_json::from_str(text) {
        Ok(value) => Ok(value),
        Err(e) if text.trim_start().starts_with(['{', '[', '"']) => Err(Failure::Error(format!(
            "argument {position} `{text}` is not valid JSON ({e}); write JSON such as \
             '{{\"a\": 1}}', or quote text as '\"{}\"'",
            text.replace('"', "\\\"")
        ))),
        Err(_) => Ok(Value::String(text.to_owned())),
    }
}

/// A tag the peer has: `wanted` itself, or the tag of the one function whose path or name
/// is `wanted`. A peer that cannot list its functions gets `wanted` as given.
async fn resolve_tag(
    me: &net::Peer,
    target: &net::Target,
    wanted: &str,
) -> Result<String, Failure> {
    let functions: BTreeMap<String, String> = match net::connections().on(target).via(me).await {
        Ok(functions) => functions,
        Err(e @ (net::Error::Unreachable { .. } | net::Error::InvalidTarget { .. })) => {
            return Err(e.into())
        }
        Err(_) => return Ok(wanted.to_owned()),
    };
    if functions.contains_key(wanted) {
        return Ok(wanted.to_owned());
    }
    let by_path = crate::info::functions_by_path(&functions);
    let matches: Vec<(&str, &Vec<&str>)> = by_path
        .iter()
        .filter(|(path, _)| **path == wanted || path.rsplit("::").next() == Some(wanted))
        .map(|(path, tags)| (*path, tags))
        .collect();
    match matches.as_slice() {
        [(_, tags)] => Ok(tags[0].to_owned()),
        // A path the peer lacks: ask for its default tag, so that the peer's answer (and
        // the error it becomes) names that function, with what to do about it.
        [] if wanted.contains("::") => Ok(base64::engine::general_purpose::STANDARD.encode(wanted)),
        [] => Ok(wanted.to_owned()),
        several => Err(Failure::Error(format!(
            "`{wanted}` names several functions on the peer ({}); give a tag or a full path",
            several
                .iter()
                .map(|(path, _)| *path)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
