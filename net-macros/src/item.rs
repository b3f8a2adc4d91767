//! The annotated function, parsed up to its body; the body stays the user's tokens.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Error, Item, Signature, Visibility};

/// A function whose body is kept as written, so that rustc, not the macro, reports any
/// mistake inside it (tracing-attributes' habit).
pub(crate) struct FnItem {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    /// The braced body, untouched.
    pub(crate) body: TokenTree,
}

impl Parse for FnItem {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let body: TokenTree = input.parse()?;
        match &body {
            TokenTree::Group(group) if group.delimiter() == Delimiter::Brace => {}
            other => return Err(Error::new_spanned(other, "expected the function's body")),
        }
        Ok(FnItem {
            attrs,
            vis,
            sig,
            body,
        })
    }
}

/// Parses `item` as a function; anything else is an error spanning the whole item.
pub(crate) fn parse_fn(item: TokenStream, attribute: &str) -> syn::Result<FnItem> {
    syn::parse2::<FnItem>(item.clone()).map_err(|error| match syn::parse2::<Item>(item) {
        Ok(Item::Fn(_)) | Err(_) => error,
        Ok(other) => Error::new_spanned(
            other,
            format!("#[net::{attribute}] applies to functions only"),
        ),
    })
}

/// Whether `attr` is `#[cfg(...)]`: it must reach every item generated from the function.
pub(crate) fn is_cfg(attr: &Attribute) -> bool {
    attr.path().is_ident("cfg")
}

/// Whether `attr` is a lint level (`allow`, `expect`, `warn`, `deny`, `forbid`).
pub(crate) fn is_lint(attr: &Attribute) -> bool {
    ["allow", "expect", "warn", "deny", "forbid"]
        .iter()
        .any(|lint| attr.path().is_ident(lint))
}

#[cfg(test)]
mod tests {
    use quote::{quote, ToTokens};

    use super::*;

    #[test]
    fn the_body_is_kept_as_written() {
        let item = parse_fn(quote!(pub async fn f(a: u8) -> u8 { a + }), "connect").unwrap();
        assert_eq!(item.sig.ident, "f");
        assert_eq!(item.body.to_token_stream().to_string(), "{ a + }");
    }

    #[test]
    fn anything_but_a_function_is_refused() {
        let error = parse_fn(
            quote!(
                struct S;
            ),
            "connect",
        )
        .err()
        .unwrap();
        assert_eq!(
            error.to_string(),
            "#[net::connect] applies to functions only"
        );
        assert!(parse_fn(
            quote!(
                fn f();
            ),
            "flag"
        )
        .is_err());
    }
}
