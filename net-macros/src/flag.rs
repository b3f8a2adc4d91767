//! `#[net::flag("NAME")]`: the function unchanged, plus its registry static.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::FnArg;

use crate::args::FlagArgs;
use crate::errors::Errors;
use crate::item::{is_cfg, parse_fn};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    try_expand(args, item.clone())
        .map(|registration| quote!(#item #registration))
        .unwrap_or_else(|error| error.to_compile_error())
}

/// The static that registers the function; the function itself is emitted as written.
fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = FlagArgs::parse_flag(args, &mut errors);
    let item = match parse_fn(item, "flag") {
        Ok(item) => item,
        Err(error) => return Err(errors.with(error)),
    };
    let sig = &item.sig;
    if let Some(token) = &sig.asyncness {
        errors.spanned(
            token,
            "a flag handler runs as soon as the flag arrives and cannot be `async`; spawn a \
             task from it instead",
        );
    }
    match sig.inputs.first() {
        Some(FnArg::Receiver(receiver)) => errors.spanned(
            receiver,
            "a flag handler cannot take `self`; make it a free function",
        ),
        Some(FnArg::Typed(_)) if sig.inputs.len() == 1 => {}
        _ => errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            "a flag handler takes exactly one parameter: `event: &net::FlagEvent`",
        )),
    }
    errors.finish()?;
    let Some(name) = args.name else {
        // FlagArgs::parse_named records an error whenever the name is missing.
        return Ok(TokenStream::new());
    };

    let krate = &args.krate;
    let cfgs = item.attrs.iter().filter(|attr| is_cfg(attr));
    let ident = &sig.ident;
    let static_ident = format_ident!("__NET_FLAG_{}", ident.unraw());
    Ok(quote! {
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        #[#krate::__private::linkme::distributed_slice(#krate::__private::FLAGS)]
        #[linkme(crate = #krate::__private::linkme)]
        static #static_ident: #krate::__private::FlagHandler = #krate::__private::FlagHandler {
            name: #name,
            handler: #ident,
        };
    })
}
