//! `#[net::subscribe("name", filters...)]`: the function becomes an ordinary registered function
//! (exactly as `#[net::connect]` makes it) plus a subscription static naming its event,
//! its registry entry and its filters.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;

use crate::args::SubscribeArgs;
use crate::errors::Errors;
use crate::item::{is_cfg, parse_fn};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = SubscribeArgs::parse(args, &mut errors);
    let parsed = match parse_fn(item.clone(), "subscribe") {
        Ok(parsed) => parsed,
        Err(error) => return errors.with(error).to_compile_error(),
    };
    // The registry entry: the same expansion (and the same signature checks) as
    // `#[net::connect(tag = .., crate = ..)]`.
    let krate = &args.krate;
    let tag = args.tag.iter();
    let entry = crate::connect::try_expand(quote!(#(tag = #tag,)* crate = #krate), item);
    let entry = match entry {
        Ok(entry) => entry,
        Err(error) => return errors.with(error).to_compile_error(),
    };
    let registration = match (errors.finish(), &args.event) {
        (Err(error), _) => error.to_compile_error(),
        // SubscribeArgs::parse records an error whenever the event is missing.
        (Ok(()), None) => TokenStream::new(),
        (Ok(()), Some(event)) => {
            let sig = &parsed.sig;
            let name = sig.ident.unraw();
            let static_ident = format_ident!("__NET_SUBSCRIPTION_{}", name);
            let entry_ident = format_ident!("__NET_ENTRY_{}", name);
            let cfgs = parsed.attrs.iter().filter(|attr| is_cfg(attr));
            let (groups, peers) = (&args.groups, &args.peers);
            let (hubs_only, on_host) = (args.hubs_only, args.on_host);
            let location = quote_spanned! {sig.ident.span()=>
                ::core::concat!(::core::file!(), ":", ::core::line!())
            };
            quote! {
                #(#cfgs)*
                #[doc(hidden)]
                #[allow(non_upper_case_globals)]
                #[#krate::__private::linkme::distributed_slice(#krate::__private::SUBSCRIPTIONS)]
                #[linkme(crate = #krate::__private::linkme)]
                static #static_ident: #krate::__private::Subscription = #krate::__private::Subscription {
                    event: #event,
                    entry: &#entry_ident,
                    groups: &[#(#groups),*],
                    hubs_only: #hubs_only,
                    on_host: #on_host,
                    peers: &[#(#peers),*],
                    location: #location,
                };
            }
        }
    };
    quote! {
        #registration
        #entry
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    #[test]
    fn an_entry_and_a_subscription() {
        let tokens = expand(
            quote!("line", groups = ["a", "b"], hubs_only, tag = "OnLine"),
            quote!(
                fn on_line(text: String) {
                    let _ = text;
                }
            ),
        );
        syn::parse2::<syn::File>(tokens.clone()).expect("the expansion parses as items");
        let out = tokens.to_string();
        assert!(out.contains("static __NET_SUBSCRIPTION_on_line"), "{out}");
        assert!(out.contains("event : \"line\""));
        assert!(out.contains("entry : & __NET_ENTRY_on_line"));
        assert!(out.contains("groups : & [\"a\" , \"b\"]"));
        assert!(out.contains("hubs_only : true"));
        assert!(out.contains("on_host : false"));
        assert!(out.contains("static __NET_ENTRY_on_line"));
        assert!(out.contains("custom_tag : :: core :: option :: Option :: Some (\"OnLine\")"));
    }

    #[test]
    fn argument_and_signature_mistakes_are_reported_together() {
        let out = expand(
            quote!(groups = [], oneway, hubs_only = true),
            quote!(
                fn f(x: &str) {}
            ),
        )
        .to_string();
        // empty groups, unknown `oneway`, valued `hubs_only`, missing event, `&str`
        assert_eq!(out.matches("compile_error").count(), 5, "{out}");
        assert!(!out.contains("__NET_SUBSCRIPTION"));
    }
}
