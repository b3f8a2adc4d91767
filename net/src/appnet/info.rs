//! app-net's `info`: the dict our peer answers to Python discovery, and [`AppNetInfo`],
//! which recognises a Python app-net peer from its own answer.

use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::json;
use super::{APP_NET_BUILTINS, APP_NET_EVENT_TAGS, INFO_TAG, PYTHON_READ_LIMIT};
use crate::call::Target;
use crate::id::PeerId;
use crate::peer::Peer;
use crate::serve::{self, Registry};
use crate::wire::Info;

/// What a Python app-net 0.6 peer says about itself when asked for `info`
/// (`net.defaults.handlers.info`): the dict its discovery reads.
///
/// ```no_run
/// # async fn f() -> net::Result<()> {
/// let reply: serde_json::Value = net::call_tag(net::AppNetInfo::TAG, serde_json::json!([]))
///     .on(net::Target::app_net("127.0.0.1:3010"))
///     .await?;
/// if let Some(python) = net::AppNetInfo::recognise(&reply) {
///     println!("{} serves {:?}", python.tag, python.connections);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AppNetInfo {
    /// Its `repr`, `<net.Peer h:HOST p:PORT g:GROUP c:N s:N f:N>`; app-net's discovery
    /// keys peers by it.
    pub tag: String,
    /// The address it serves on (app-net's `HOST_IP`).
    pub host: String,
    /// The port it serves on.
    pub port: u16,
    /// The user running it.
    pub user: String,
    /// Its Python interpreter.
    pub executable: String,
    /// Its group. app-net reports `str(None)`, the text `"None"`, for a peer without one;
    /// that reads back as `None` here.
    #[serde(deserialize_with = "group_from_app_net")]
    pub group: Option<String>,
    /// Whether it is a hub.
    pub hub: bool,
    /// The tags it answers to (`module.function` and custom tags), sorted.
    pub connections: Vec<String>,
    /// The events it publishes to subscribers.
    pub subscriptions: Vec<String>,
    /// The flags it handles.
    pub flags: Vec<String>,
}

fn group_from_app_net<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let group = Option::<String>::deserialize(d)?;
    Ok(group.filter(|g| g != "None"))
}

impl AppNetInfo {
    /// The tag app-net 0.6 calls `info` under (its discovery asks every port for it).
    pub const TAG: &'static str = INFO_TAG;

    /// Recognises a Python app-net peer from its `info` reply: `Some` when the reply has
    /// app-net's shape. A `net` peer's app-net-compatible `info` has the same shape plus a
    /// `net_protocol` field, and gives `None`: reach it with its own protocol instead.
    pub fn recognise(reply: &Value) -> Option<AppNetInfo> {
        let object = reply.as_object()?;
        if object.contains_key(NET_MARKER) {
            return None;
        }
        let info: AppNetInfo = serde_json::from_value(reply.clone()).ok()?;
        info.tag.starts_with("<net.Peer").then_some(info)
    }

    /// Where its server listens, when its host is an IP address (app-net's always is).
    pub fn addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port))
    }

    /// What discovery lists of it: an [`Info`] with its id made from its address and
    /// group (app-net's ids say the same), version `app-net` and protocol 0.
    pub(crate) fn as_info(&self, addr: SocketAddr) -> Info {
        Info {
            id: PeerId::new(addr.ip(), addr.port(), self.group.clone()),
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            executable: self.executable.clone(),
            group: self.group.clone(),
            hub: self.hub,
            connections: self.connections.clone(),
            subscriptions: self.subscriptions.clone(),
            flags: self.flags.clone(),
            events: Vec::new(),
            version: "app-net".into(),
            protocol: 0,
        }
    }

    /// The target to call it with: `f(x).on(info.target()?)`.
    pub fn target(&self) -> Option<Target> {
        self.addr().map(Target::app_net)
    }
}

/// The field that tells our own app-net-shaped `info` from a Python peer's (app-net
/// ignores fields it does not know).
const NET_MARKER: &str = "net_protocol";

/// Our `info` in app-net's shape, for Python discovery. It is at most one 1,024-byte
/// chunk, because app-net's client reads no more and would otherwise fail to parse it and
/// stop scanning: when the peer has many functions, the list of tags is cut short (the
/// app-net built-ins and the events handlers Python calls by name first, then the
/// program's custom tags, then default tags), and `connections` on the `net` side lists
/// them all.
pub(crate) fn app_net_info(peer: &Peer) -> Vec<u8> {
    // Custom tags (readable, app-net style) before default ones (base64 of the path).
    let mut custom = Vec::new();
    let mut default = Vec::new();
    for (tag, path) in Registry::get().map(|r| r.tags()).unwrap_or_default() {
        if base64::engine::general_purpose::STANDARD.encode(&path) == tag {
            default.push(tag);
        } else {
            custom.push(tag);
        }
    }
    // This crate's own services' built-ins (`net.table.*`, `net.events.deliver`) after the
    // program's tags: a Python peer has no use for them.
    custom.retain(|t| !APP_NET_EVENT_TAGS.contains(&t.as_str()));
    let (ours, program): (Vec<String>, Vec<String>) =
        custom.into_iter().partition(|t| t.starts_with("net."));
    let candidates: Vec<String> = APP_NET_BUILTINS
        .iter()
        .chain(&APP_NET_EVENT_TAGS)
        .map(|t| (*t).to_owned())
        .chain(program)
        .chain(ours)
        .chain(default)
        .collect();
    let flags = serve::flag_names();
    let group = peer.group().unwrap_or("None").to_owned();
    let host = peer.id().host().to_string();
    let port = peer.addr().port();
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    let mut executable = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if executable.len() > 200 {
        executable = json::truncate(&executable);
    }
    let build = |connections: &[String]| {
        let mut connections = connections.to_vec();
        connections.sort();
        let info = serde_json::json!({
            "tag": format!(
                "<net.Peer h:{host} p:{port} g:{group} c:{} s:0 f:{}>",
                connections.len(),
                flags.len()
            ),
            "host": host,
            "port": port,
            "user": user,
            "executable": executable,
            "group": group,
            "hub": peer.is_hub(),
            "connections": connections,
            "subscriptions": [],
            "flags": flags,
            NET_MARKER: crate::wire::PROTOCOL_VERSION,
        });
        json::to_ascii_json(&info)
    };
    longest_fitting(&candidates, build)
}

/// `build` of the longest prefix of `tags` whose encoding fits app-net's one read (all of
/// them, for most peers).
fn longest_fitting(tags: &[String], build: impl Fn(&[String]) -> Vec<u8>) -> Vec<u8> {
    let all = build(tags);
    if all.len() <= PYTHON_READ_LIMIT {
        return all;
    }
    // Binary search: the encoding only grows with more tags.
    let (mut lo, mut hi) = (0, tags.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if build(&tags[..mid]).len() <= PYTHON_READ_LIMIT {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    tracing::debug!(
        listed = lo,
        total = tags.len(),
        "app-net info cut to fit app-net's 1024-byte read"
    );
    build(&tags[..lo])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn python_info() -> Value {
        json!({
            "tag": "<net.Peer h:127.0.0.1 p:3010 g:None c:6 s:0 f:2>",
            "host": "127.0.0.1", "port": 3010, "user": "me",
            "executable": "/usr/bin/python3", "group": "None", "hub": false,
            "connections": ["app.multiply", "net.defaults.handlers.info"],
            "subscriptions": [], "flags": ["INVALID_CONNECTION", "NULL"]
        })
    }

    #[test]
    fn recognises_a_python_peer() {
        let info = AppNetInfo::recognise(&python_info()).unwrap();
        assert_eq!(info.group, None);
        assert_eq!(info.addr(), Some("127.0.0.1:3010".parse().unwrap()));
        assert!(info.connections.contains(&"app.multiply".to_owned()));
        let mut grouped = python_info();
        grouped["group"] = json!("render");
        let info = AppNetInfo::recognise(&grouped).unwrap();
        assert_eq!(info.group.as_deref(), Some("render"));
    }

    #[test]
    fn info_is_cut_to_one_app_net_read() {
        let tags: Vec<String> = (0..100)
            .map(|i| format!("module.function_{i:03}"))
            .collect();
        let build = |tags: &[String]| json::to_ascii_json(&json!({"connections": tags}));
        let fitted = longest_fitting(&tags, build);
        assert!(fitted.len() <= PYTHON_READ_LIMIT);
        let listed: Value = serde_json::from_slice(&fitted).unwrap();
        let listed = listed["connections"].as_array().unwrap().len();
        assert!(listed > 30 && listed < 100, "{listed}");
        // One more tag would not have fitted.
        assert!(build(&tags[..listed + 1]).len() > PYTHON_READ_LIMIT);
        assert_eq!(longest_fitting(&tags[..3], build), build(&tags[..3]));
    }

    #[test]
    fn refuses_other_shapes_and_our_own_peers() {
        assert!(AppNetInfo::recognise(&json!("NULL")).is_none());
        assert!(AppNetInfo::recognise(&json!({"tag": "<net.Peer>"})).is_none());
        let mut ours = python_info();
        ours[NET_MARKER] = json!(1);
        assert!(AppNetInfo::recognise(&ours).is_none());
    }
}
