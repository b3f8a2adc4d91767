//! The attributes' arguments (`"Tag"`, `oneway`, `crate = path`, an event's name, a
//! subscription's filters), each checked on its own.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Error, Expr, ExprArray, Ident, Lit, LitStr, Path, Token};

use crate::errors::Errors;

/// The arguments of `#[net::connect]`.
pub(crate) struct ConnectArgs {
    /// The custom tag, `"Tag"` or `tag = "Tag"`.
    pub(crate) tag: Option<LitStr>,
    /// `oneway`: callers get no reply.
    pub(crate) oneway: bool,
    /// The path of the runtime crate, `::net` unless `crate = path`.
    pub(crate) krate: Path,
}

impl ConnectArgs {
    /// Parses every argument; a bad one is recorded in `errors` and left at its default.
    pub(crate) fn parse(args: TokenStream, errors: &mut Errors) -> Self {
        let mut tag = None;
        let mut oneway = None;
        let mut krate = None;
        for entry in entries(args, errors) {
            match entry {
                Entry::Str(lit) => set_name(&mut tag, lit, "tag", errors),
                Entry::Pair(key, value) if key == "tag" => {
                    if let Some(lit) = errors.ok(syn::parse2(value)) {
                        set_name(&mut tag, lit, "tag", errors);
                    }
                }
                Entry::Word(key) if key == "tag" => errors.spanned(key, "expected `tag = \"...\"`"),
                Entry::Word(key) if key == "oneway" => match oneway {
                    Some(_) => errors.spanned(key, "`oneway` is given twice"),
                    None => oneway = Some(key),
                },
                Entry::Pair(key, _) if key == "oneway" => {
                    errors.spanned(key, "`oneway` takes no value: write `oneway`")
                }
                Entry::Pair(key, value) if key == "crate" => {
                    set_crate(&mut krate, key, value, errors)
                }
                Entry::Word(key) if key == "crate" => {
                    errors.spanned(key, "expected `crate = path`")
                }
                Entry::Word(key) | Entry::Pair(key, _) => errors.spanned(
                    &key,
                    format!(
                        "unknown argument `{key}`; expected a tag string, `tag = \"...\"`, \
                         `oneway` or `crate = path`"
                    ),
                ),
            }
        }
        ConnectArgs {
            tag,
            oneway: oneway.is_some(),
            krate: krate.unwrap_or_else(default_crate),
        }
    }
}

/// The arguments of an attribute that names one thing: `#[net::flag("NAME")]`,
/// `#[net::event("name")]`.
pub(crate) struct NamedArgs {
    /// The name, `"name"` or `name = "name"`; `None` only after an error.
    pub(crate) name: Option<LitStr>,
    /// The path of the runtime crate, `::net` unless `crate = path`.
    pub(crate) krate: Path,
}

/// The arguments of `#[net::flag]`.
pub(crate) type FlagArgs = NamedArgs;

/// The arguments of `#[net::event]`.
pub(crate) type EventArgs = NamedArgs;

impl NamedArgs {
    /// `#[net::flag]`'s arguments.
    pub(crate) fn parse_flag(args: TokenStream, errors: &mut Errors) -> Self {
        Self::parse_named(args, errors, "flag", "flag's name", "\"BUSY\"", "\"NAME\"")
    }

    /// `#[net::event]`'s arguments.
    pub(crate) fn parse_event(args: TokenStream, errors: &mut Errors) -> Self {
        Self::parse_named(
            args,
            errors,
            "event",
            "event's name",
            "\"line\"",
            "\"name\"",
        )
    }

    /// Parses every argument; a bad one is recorded in `errors`, and so is a missing name.
    fn parse_named(
        args: TokenStream,
        errors: &mut Errors,
        attribute: &str,
        what: &str,
        example: &str,
        placeholder: &str,
    ) -> Self {
        let mut name = None;
        let mut krate = None;
        let mut named = false;
        for entry in entries(args, errors) {
            match entry {
                Entry::Str(lit) => {
                    named = true;
                    set_name(&mut name, lit, what, errors);
                }
                Entry::Pair(key, value) if key == "name" => {
                    named = true;
                    if let Some(lit) = errors.ok(syn::parse2(value)) {
                        set_name(&mut name, lit, what, errors);
                    }
                }
                Entry::Pair(key, value) if key == "crate" => {
                    set_crate(&mut krate, key, value, errors)
                }
                Entry::Word(key) | Entry::Pair(key, _) => errors.spanned(
                    &key,
                    format!(
                        "unknown argument `{key}`; expected the {what} as a string, e.g. \
                         `{example}`, or `crate = path`"
                    ),
                ),
            }
        }
        if !named {
            errors.push(Error::new(
                Span::call_site(),
                format!("#[net::{attribute}] needs the {what}: #[net::{attribute}({placeholder})]"),
            ));
        }
        NamedArgs {
            name,
            krate: krate.unwrap_or_else(default_crate),
        }
    }
}

/// The arguments of `#[net::subscribe]`.
pub(crate) struct SubscribeArgs {
    /// The event subscribed to, `"name"` or `event = "name"`; `None` only after an error.
    pub(crate) event: Option<LitStr>,
    /// `groups = ["a", "b"]` (or `groups = "a"`): only publishers of these groups.
    pub(crate) groups: Vec<LitStr>,
    /// `hubs_only`: only publishers that are hubs.
    pub(crate) hubs_only: bool,
    /// `on_host`: only publishers on this machine.
    pub(crate) on_host: bool,
    /// `peers = ["host:port", ...]`: only these publishers.
    pub(crate) peers: Vec<LitStr>,
    /// The handler's custom tag, `tag = "Tag"`.
    pub(crate) tag: Option<LitStr>,
    /// The path of the runtime crate, `::net` unless `crate = path`.
    pub(crate) krate: Path,
}

impl SubscribeArgs {
    /// Parses every argument; a bad one is recorded in `errors`, and so is a missing event.
    pub(crate) fn parse(args: TokenStream, errors: &mut Errors) -> Self {
        let mut event = None;
        let mut groups = None;
        let mut hubs_only = None;
        let mut on_host = None;
        let mut peers = None;
        let mut tag = None;
        let mut krate = None;
        let mut named = false;
        for entry in entries(args, errors) {
            match entry {
                Entry::Str(lit) => {
                    named = true;
                    set_name(&mut event, lit, "event's name", errors);
                }
                Entry::Pair(key, value) if key == "event" => {
                    named = true;
                    if let Some(lit) = errors.ok(syn::parse2(value)) {
                        set_name(&mut event, lit, "event's name", errors);
                    }
                }
                Entry::Pair(key, value) if key == "groups" => {
                    set_list(&mut groups, key, value, "group", errors)
                }
                Entry::Pair(key, value) if key == "peers" => {
                    set_list(&mut peers, key, value, "peer", errors)
                }
                Entry::Pair(key, value) if key == "tag" => {
                    if let Some(lit) = errors.ok(syn::parse2(value)) {
                        set_name(&mut tag, lit, "tag", errors);
                    }
                }
                Entry::Pair(key, value) if key == "crate" => {
                    set_crate(&mut krate, key, value, errors)
                }
                Entry::Word(key) if key == "hubs_only" || key == "on_host" => {
                    let slot = if key == "hubs_only" {
                        &mut hubs_only
                    } else {
                        &mut on_host
                    };
                    match slot {
                        Some(_) => errors.spanned(&key, format!("`{key}` is given twice")),
                        None => *slot = Some(key),
                    }
                }
                Entry::Pair(key, _) if key == "hubs_only" || key == "on_host" => {
                    errors.spanned(&key, format!("`{key}` takes no value: write `{key}`"))
                }
                Entry::Word(key)
                    if ["groups", "peers", "tag", "event", "crate"]
                        .contains(&key.to_string().as_str()) =>
                {
                    errors.spanned(&key, format!("expected a value: `{key} = ...`"))
                }
                Entry::Word(key) | Entry::Pair(key, _) => errors.spanned(
                    &key,
                    format!(
                        "unknown argument `{key}`; expected the event's name as a string, \
                         `groups = [\"..\"]`, `hubs_only`, `on_host`, `peers = [\"host:port\"]`, \
                         `tag = \"..\"` or `crate = path`"
                    ),
                ),
            }
        }
        if !named {
            errors.push(Error::new(
                Span::call_site(),
                "#[net::subscribe] needs the event's name: #[net::subscribe(\"name\")]",
            ));
        }
        SubscribeArgs {
            event,
            groups: groups.unwrap_or_default(),
            hubs_only: hubs_only.is_some(),
            on_host: on_host.is_some(),
            peers: peers.unwrap_or_default(),
            tag,
            krate: krate.unwrap_or_else(default_crate),
        }
    }
}

/// Parses `["a", "b"]` or `"a"` into a non-empty list of non-empty strings.
fn set_list(
    slot: &mut Option<Vec<LitStr>>,
    key: Ident,
    value: TokenStream,
    what: &str,
    errors: &mut Errors,
) {
    if slot.is_some() {
        errors.spanned(&key, format!("`{key}` is given twice"));
        return;
    }
    let expected = format!("expected a list of strings: `{key} = [\"..\", \"..\"]`");
    let items: Vec<Expr> = match syn::parse2::<Expr>(value.clone()) {
        Ok(Expr::Array(ExprArray { elems, .. })) => elems.into_iter().collect(),
        Ok(expr @ Expr::Lit(_)) => vec![expr],
        _ => {
            errors.spanned(value, expected);
            return;
        }
    };
    if items.is_empty() {
        errors.spanned(
            &key,
            format!("`{key}` needs at least one {what}; leave it out to accept any"),
        );
        return;
    }
    let mut list = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Expr::Lit(syn::ExprLit {
                lit: Lit::Str(lit), ..
            }) if !lit.value().trim().is_empty() => list.push(lit),
            Expr::Lit(syn::ExprLit {
                lit: Lit::Str(lit), ..
            }) => errors.spanned(lit, format!("a {what} must not be empty")),
            other => errors.spanned(other, &expected),
        }
    }
    *slot = Some(list);
}

/// One comma-separated argument.
enum Entry {
    /// `"text"`
    Str(LitStr),
    /// `key`
    Word(Ident),
    /// `key = value`, the value not yet parsed.
    Pair(Ident, TokenStream),
}

/// Splits `args` at its top-level commas and parses each piece on its own, so that one bad
/// argument does not hide the others.
fn entries(args: TokenStream, errors: &mut Errors) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut piece = TokenStream::new();
    for token in args {
        match &token {
            TokenTree::Punct(comma) if comma.as_char() == ',' => {
                let tokens = std::mem::take(&mut piece);
                if tokens.is_empty() {
                    errors.push(Error::new(comma.span(), "expected an argument before `,`"));
                } else {
                    entries.extend(errors.ok(entry.parse2(tokens)));
                }
            }
            _ => piece.extend([token]),
        }
    }
    if !piece.is_empty() {
        entries.extend(errors.ok(entry.parse2(piece)));
    }
    entries
}

fn entry(input: ParseStream) -> syn::Result<Entry> {
    if input.peek(Lit) {
        return input.parse().map(Entry::Str);
    }
    let key = input.call(Ident::parse_any)?;
    if input.is_empty() {
        return Ok(Entry::Word(key));
    }
    input.parse::<Token![=]>()?;
    let value: TokenStream = input.parse()?;
    if value.is_empty() {
        return Err(Error::new_spanned(key, "expected a value after `=`"));
    }
    Ok(Entry::Pair(key, value))
}

fn set_name(slot: &mut Option<LitStr>, lit: LitStr, what: &str, errors: &mut Errors) {
    if slot.is_some() {
        errors.spanned(lit, format!("the {what} is given twice"));
    } else if lit.value().is_empty() {
        errors.spanned(lit, format!("the {what} must not be empty"));
    } else {
        *slot = Some(lit);
    }
}

fn set_crate(slot: &mut Option<Path>, key: Ident, value: TokenStream, errors: &mut Errors) {
    if slot.is_some() {
        errors.spanned(key, "`crate` is given twice");
    } else {
        *slot = errors.ok(Path::parse_mod_style.parse2(value));
    }
}

fn default_crate() -> Path {
    syn::parse_quote!(::net)
}

#[cfg(test)]
mod tests {
    use quote::{quote, ToTokens};

    use super::*;

    fn connect(args: TokenStream) -> (ConnectArgs, Result<(), String>) {
        let mut errors = Errors::default();
        let parsed = ConnectArgs::parse(args, &mut errors);
        (parsed, errors.finish().map_err(|e| error_text(&e)))
    }

    fn error_text(error: &Error) -> String {
        error
            .into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(" | ")
    }

    fn tag(args: &ConnectArgs) -> Option<String> {
        args.tag.as_ref().map(LitStr::value)
    }

    #[test]
    fn no_arguments_means_default_tag_and_crate() {
        let (args, result) = connect(quote!());
        assert!(result.is_ok());
        assert_eq!(tag(&args), None);
        assert!(!args.oneway);
        assert_eq!(args.krate.to_token_stream().to_string(), ":: net");
    }

    #[test]
    fn every_documented_form_parses() {
        for (tokens, want_tag, want_oneway) in [
            (quote!("Tag"), Some("Tag"), false),
            (quote!(oneway), None, true),
            (quote!("Tag", oneway), Some("Tag"), true),
            (quote!(tag = "Tag"), Some("Tag"), false),
            (quote!(tag = "Tag", oneway,), Some("Tag"), true),
        ] {
            let (args, result) = connect(tokens.clone());
            assert_eq!(result, Ok(()), "{tokens}");
            assert_eq!(tag(&args).as_deref(), want_tag, "{tokens}");
            assert_eq!(args.oneway, want_oneway, "{tokens}");
        }
    }

    #[test]
    fn crate_override() {
        let (args, result) = connect(quote!(crate = renamed::inner, oneway));
        assert!(result.is_ok());
        assert_eq!(args.krate.to_token_stream().to_string(), "renamed :: inner");
    }

    #[test]
    fn all_mistakes_are_reported_together() {
        let (args, result) = connect(quote!("", color = 3, oneway, oneway, tag = "A", tag = "B"));
        assert_eq!(
            result.unwrap_err(),
            "the tag must not be empty | unknown argument `color`; expected a tag string, \
             `tag = \"...\"`, `oneway` or `crate = path` | `oneway` is given twice | \
             the tag is given twice"
        );
        assert_eq!(tag(&args).as_deref(), Some("A"));
        assert!(args.oneway);
    }

    #[test]
    fn malformed_arguments() {
        assert!(connect(quote!(42)).1.is_err());
        assert!(connect(quote!(tag)).1.is_err());
        assert!(connect(quote!(tag =)).1.is_err());
        assert!(connect(quote!(oneway = true)).1.is_err());
        assert!(connect(quote!("A",, oneway)).1.is_err());
        assert!(connect(quote!(crate = "net")).1.is_err());
    }

    #[test]
    fn flag_needs_a_non_empty_name() {
        let mut errors = Errors::default();
        let args = FlagArgs::parse_flag(quote!("BUSY"), &mut errors);
        assert!(errors.finish().is_ok());
        assert_eq!(args.name.map(|n| n.value()).as_deref(), Some("BUSY"));

        for tokens in [quote!(), quote!(""), quote!(crate = net), quote!(busy)] {
            let mut errors = Errors::default();
            FlagArgs::parse_flag(tokens.clone(), &mut errors);
            assert!(errors.finish().is_err(), "{tokens}");
        }
    }
}
