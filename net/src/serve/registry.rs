//! The link-time registry of `#[net::connect]` functions, `#[net::flag]` handlers,
//! `#[net::event]` declarations and `#[net::subscribe]` subscriptions, and lookup by tag.
//!
//! Each annotated function becomes one [`Entry`] static in the [`ENTRIES`]
//! distributed slice (linkme). The first lookup builds a tag index; two functions claiming
//! one tag is a start-up error that names both, never a silent "last one wins".

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use base64::Engine as _;
use linkme::distributed_slice;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::speed::Speed;
use super::{Caller, Outcome};
use crate::error::Error;

/// Every `#[net::connect]` function of the program, collected by the linker.
#[distributed_slice]
pub static ENTRIES: [Entry];

/// Every `#[net::flag]` handler of the program, collected by the linker.
#[distributed_slice]
pub static FLAGS: [FlagHandler];

/// Every `#[net::event]` function of the program, collected by the linker: what `info`
/// reports a peer can publish.
#[distributed_slice]
pub static EVENTS: [EventDecl];

/// Every `#[net::subscribe]` function of the program, collected by the linker: what a peer
/// registers with the peers it subscribes to.
#[distributed_slice]
pub static SUBSCRIPTIONS: [Subscription];

/// A boxed, sendable future, as async handlers return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// How a registered function is run.
#[derive(Clone, Copy)]
pub enum Handler {
    /// A plain `fn`: run on the blocking pool when called remotely, so a slow one never
    /// stalls the async workers.
    Sync(fn(Args<'_>, Caller) -> Outcome),
    /// An `async fn`: polled on the runtime, cancellable by aborting its task.
    Async(fn(Args<'_>, Caller) -> BoxFuture<Outcome>),
}

/// One registered function: what the macro emits for each `#[net::connect]`.
pub struct Entry {
    /// The function's name as written.
    pub name: &'static str,
    /// `module_path!()` where it was defined; with `name` it makes the default tag.
    pub module_path: &'static str,
    /// The custom tag of `#[net::connect("Tag")]`; the function answers to both tags.
    pub custom_tag: Option<&'static str>,
    /// Parameter names in order (the `Caller` parameter left out), for keyword arguments.
    pub params: &'static [&'static str],
    /// `#[net::connect(oneway)]`: calls return once sent and never get a reply.
    pub oneway: bool,
    /// The function returns `Result<T, E>` (detected from the signature by the macro): the
    /// calling side rebuilds `Ok(T)` from a value reply and `Err(E)` from a raised one.
    pub returns_result: bool,
    /// `file!():line!()` of the function, reported with remote panics.
    pub location: &'static str,
    /// Runs the function on decoded arguments.
    pub handler: Handler,
}

impl Entry {
    /// The default tag: base64 of `module::path::name`, as app-net tags functions by
    /// module and name.
    pub fn default_tag(&self) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}::{}", self.module_path, self.name))
    }

    /// The tag callers use: the custom tag when there is one (it survives renames), the
    /// default tag otherwise.
    pub fn tag(&self) -> String {
        match self.custom_tag {
            Some(tag) => tag.to_owned(),
            None => self.default_tag(),
        }
    }

    /// `module::path::name`, for messages.
    pub fn path(&self) -> String {
        format!("{}::{}", self.module_path, self.name)
    }
}

/// One `#[net::flag("NAME")]` handler.
pub struct FlagHandler {
    /// The flag's name, e.g. `NULL`.
    pub name: &'static str,
    /// Runs on the calling side when a call's response is this flag.
    pub handler: fn(&super::FlagEvent),
}

/// One `#[net::event("name")]` function: the event it publishes and where it is defined.
pub struct EventDecl {
    /// The event's name; several functions may publish one event.
    pub name: &'static str,
    /// `module_path!()::function`, for messages.
    pub path: &'static str,
    /// `file!():line!()` of the function.
    pub location: &'static str,
}

/// One `#[net::subscribe("name", ...)]` function: the event, the function's registry entry
/// (its tag is what publishers call), and the filters a publishing peer must pass.
pub struct Subscription {
    /// The event subscribed to.
    pub event: &'static str,
    /// The function run for each event; an ordinary entry.
    pub entry: &'static Entry,
    /// `groups = [...]`: only peers of these groups; empty means any group.
    pub groups: &'static [&'static str],
    /// `hubs_only`: only hubs.
    pub hubs_only: bool,
    /// `on_host`: only peers on this machine.
    pub on_host: bool,
    /// `peers = [...]`: only these peers (`host:port` or peer ids); empty means any peer.
    pub peers: &'static [&'static str],
    /// `file!():line!()` of the function.
    pub location: &'static str,
}

/// The arguments of one call: positional JSON array, plus keyword arguments when the
/// caller used them (app-net's `kwargs`).
/// Borrowed from the frame they came in when the handler runs at once, owned otherwise.
#[derive(Debug)]
pub struct Args<'a> {
    /// A JSON array, kept raw so that the handler decodes it straight into its parameter
    /// tuple without an intermediate `Value`.
    pub positional: Cow<'a, RawValue>,
    /// Named arguments, matched against [`Entry::params`].
    pub named: Option<Map<String, Value>>,
    /// What the `net::Bytes` markers among the arguments refer to (the frame's
    /// attachments).
    pub attachments: Vec<bytes::Bytes>,
}

impl Args<'static> {
    /// Positional arguments only.
    pub fn positional(positional: Box<RawValue>) -> Self {
        Args::owned(positional, None, Vec::new())
    }

    /// Positional and named arguments, owned.
    pub fn owned(
        positional: Box<RawValue>,
        named: Option<Map<String, Value>>,
        attachments: Vec<bytes::Bytes>,
    ) -> Self {
        Args {
            positional: Cow::Owned(positional),
            named,
            attachments,
        }
    }
}

impl<'a> Args<'a> {
    /// Arguments borrowed from the frame they came in.
    pub fn borrowed(
        positional: &'a RawValue,
        named: Option<Map<String, Value>>,
        attachments: Vec<bytes::Bytes>,
    ) -> Self {
        Args {
            positional: Cow::Borrowed(positional),
            named,
            attachments,
        }
    }

    /// Decodes the arguments into the parameter tuple `T`. `params` names the parameters
    /// so that keyword arguments land in the right place. The error says which argument
    /// was wrong and how.
    pub fn decode<T: DeserializeOwned>(self, params: &[&str]) -> Result<T, String> {
        let mut args = self;
        let attachments = std::mem::take(&mut args.attachments);
        crate::wire::resolving(&attachments, || args.decode_here(params))
    }

    fn decode_here<T: DeserializeOwned>(self, params: &[&str]) -> Result<T, String> {
        let named = match self.named {
            Some(named) if !named.is_empty() => named,
            _ => {
                // A function without parameters decodes `()`, which serde reads only from
                // `null`; the wire carries an empty array (from our callers, other
                // languages and app-net alike).
                let positional = match self.positional.get().trim() {
                    "[]" if params.is_empty() => "null",
                    text => text,
                };
                return serde_json::from_str(positional).map_err(|e| {
                    // A count that differs says more than serde's "trailing characters".
                    let given = serde_json::from_str::<Vec<&RawValue>>(self.positional.get())
                        .map(|values| values.len());
                    match given {
                        Ok(given) if given != params.len() => format!(
                            "{given} argument{} given, the function takes {} ({})",
                            if given == 1 { "" } else { "s" },
                            params.len(),
                            params.join(", ")
                        ),
                        _ => format!(
                            "arguments {} do not fit the parameters ({}): {e}",
                            truncate(self.positional.get()),
                            params.join(", ")
                        ),
                    }
                });
            }
        };
        let mut values: Vec<Value> = serde_json::from_str(self.positional.get())
            .map_err(|e| format!("positional arguments are not a JSON array: {e}"))?;
        if values.len() > params.len() {
            return Err(format!(
                "{} positional arguments given, the function takes {} ({})",
                values.len(),
                params.len(),
                params.join(", ")
            ));
        }
        let mut named = named;
        for name in &params[values.len()..] {
            match named.remove(*name) {
                Some(value) => values.push(value),
                None => values.push(Value::Null),
            }
        }
        if let Some(unknown) = named.keys().next() {
            return Err(format!(
                "unknown keyword argument `{unknown}`; the parameters are ({})",
                params.join(", ")
            ));
        }
        serde_json::from_value(Value::Array(values)).map_err(|e| {
            format!(
                "arguments do not fit the parameters ({}): {e}",
                params.join(", ")
            )
        })
    }
}

fn truncate(text: &str) -> String {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The tag index, built once from the linker's slice.
pub(crate) struct Registry {
    by_tag: BTreeMap<String, &'static Entry>,
    /// How long each function's runs take, by the address of its entry (sorted as
    /// `by_entry`): where the serving layer runs its next call (`speed.rs`).
    speeds: Vec<(usize, Speed)>,
    /// Each function's calling tag by the address of its entry, sorted by address: a
    /// call's tag is looked up, not rebuilt (building it, base64 of the path, on every
    /// call was a tenth of a call's work in the call benchmark).
    by_entry: Vec<(usize, String)>,
}

fn address(entry: &'static Entry) -> usize {
    entry as *const Entry as usize
}

static REGISTRY: OnceLock<Result<Registry, Error>> = OnceLock::new();

impl Registry {
    /// The process's registry. The first call builds it and checks for duplicate tags.
    pub(crate) fn get() -> Result<&'static Registry, Error> {
        REGISTRY
            .get_or_init(Registry::build)
            .as_ref()
            .map_err(Clone::clone)
    }

    fn build() -> Result<Registry, Error> {
        let mut by_tag: BTreeMap<String, &'static Entry> = BTreeMap::new();
        for conn in ENTRIES.iter() {
            let mut tags = vec![conn.default_tag()];
            tags.extend(conn.custom_tag.map(str::to_owned));
            for tag in tags {
                match by_tag.get(&tag) {
                    Some(existing) if std::ptr::eq(*existing, conn) => {}
                    Some(existing) => {
                        return Err(Error::DuplicateTag {
                            tag,
                            first: format!("{} ({})", existing.path(), existing.location),
                            second: format!("{} ({})", conn.path(), conn.location),
                        })
                    }
                    None => {
                        by_tag.insert(tag, conn);
                    }
                }
            }
        }
        let mut by_entry: Vec<(usize, String)> =
            ENTRIES.iter().map(|c| (address(c), c.tag())).collect();
        by_entry.sort_unstable_by_key(|(at, _)| *at);
        let speeds = by_entry
            .iter()
            .map(|(at, _)| (*at, Speed::default()))
            .collect();
        Ok(Registry {
            by_tag,
            by_entry,
            speeds,
        })
    }

    /// The running record of a registered function.
    pub(crate) fn speed(&'static self, entry: &'static Entry) -> Option<&'static Speed> {
        let at = self
            .speeds
            .binary_search_by_key(&address(entry), |(at, _)| *at)
            .ok()?;
        Some(&self.speeds[at].1)
    }

    /// The calling tag of a registered function.
    pub(crate) fn tag_of(&self, entry: &'static Entry) -> Option<&str> {
        let at = self
            .by_entry
            .binary_search_by_key(&address(entry), |(at, _)| *at)
            .ok()?;
        Some(&self.by_entry[at].1)
    }

    /// Checks that every entry of `required` was collected: the built-ins are named by
    /// the composition root and checked here, so that a linker that dropped them is a
    /// loud start-up error rather than a peer that silently lacks `info`.
    pub(crate) fn require(&self, required: &[&'static Entry]) -> Result<(), Error> {
        match required.iter().find(|c| self.tag_of(c).is_none()) {
            None => Ok(()),
            Some(missing) => Err(Error::Usage(format!(
                "the linker dropped net's built-in function {} ({}); link with \
                 codegen-units=1 or report your platform",
                missing.path(),
                missing.location
            ))),
        }
    }

    /// The function registered under `tag`.
    pub(crate) fn lookup(&self, tag: &str) -> Option<&'static Entry> {
        self.by_tag.get(tag).copied()
    }

    /// Every tag with the function's path, sorted by tag: what `connections` returns and
    /// what an unknown-tag error lists.
    pub(crate) fn tags(&self) -> BTreeMap<String, String> {
        self.by_tag
            .iter()
            .map(|(tag, conn)| (tag.clone(), conn.path()))
            .collect()
    }
}

/// The flag handlers registered under `name`.
pub(crate) fn flag_handlers(name: &str) -> impl Iterator<Item = &'static FlagHandler> + '_ {
    FLAGS.iter().filter(move |flag| flag.name == name)
}

/// Every registered flag name, sorted and without repeats.
pub(crate) fn flag_names() -> Vec<String> {
    let mut names: Vec<String> = super::flags::BUILT_IN
        .iter()
        .map(|name| (*name).to_owned())
        .chain(FLAGS.iter().map(|flag| flag.name.to_owned()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Every event name a `#[net::event]` function publishes, sorted and without repeats.
pub(crate) fn event_names() -> Vec<String> {
    let mut names: Vec<String> = EVENTS.iter().map(|e| e.name.to_owned()).collect();
    names.sort();
    names.dedup();
    names
}
