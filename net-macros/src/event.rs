//! `#[net::event("name")]`: the function keeps its signature but returns a `net::Publish`
//! of what its body returned; a static in its body declares the event.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, GenericParam, Ident, Pat, ReturnType, Type, TypeImplTrait};

use crate::args::EventArgs;
use crate::connect::allow_instead_of_expect;
use crate::errors::Errors;
use crate::item::{is_lint, parse_fn};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    try_expand(args, item).unwrap_or_else(|error| error.to_compile_error())
}

fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = EventArgs::parse_event(args, &mut errors);
    let item = match parse_fn(item, "event") {
        Ok(item) => item,
        Err(error) => return Err(errors.with(error)),
    };
    let sig = &item.sig;
    if let Some(token) = &sig.asyncness {
        errors.spanned(
            token,
            "an event function shapes the payload and cannot be `async`; do the async work \
             before calling it",
        );
    }
    if let Some(token) = &sig.constness {
        errors.spanned(
            token,
            "an event function publishes when called and cannot be `const`",
        );
    }
    if let Some(token) = &sig.unsafety {
        errors.spanned(token, "an event function cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(abi, "an event function cannot be `extern`");
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(variadic, "an event function cannot be variadic");
    }
    let mut outer_params = Vec::new();
    let mut call_args = Vec::new();
    let mut impl_trait_args = false;
    for (i, input) in sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(receiver) => errors.spanned(
                receiver,
                "an event function cannot take `self`; make it a free function",
            ),
            FnArg::Typed(typed) => {
                let ident = match &*typed.pat {
                    Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                        pat.ident.clone()
                    }
                    _ => Ident::new(&format!("arg{i}"), Span::mixed_site()),
                };
                impl_trait_args |= has_impl_trait(&typed.ty);
                let ty = &typed.ty;
                outer_params.push(quote!(#ident: #ty));
                call_args.push(ident);
            }
        }
    }
    let output = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some(&**ty),
    };
    if let Some(ty) = output.filter(|ty| has_impl_trait(ty)) {
        errors.spanned(
            ty,
            "an event's payload needs a concrete serde type, not `impl Trait`",
        );
    }
    errors.finish()?;
    let Some(name) = args.name else {
        // EventArgs::parse_named records an error whenever the name is missing.
        return Ok(TokenStream::new());
    };

    let krate = &args.krate;
    let attrs = item.attrs.iter().map(allow_instead_of_expect);
    let lints = item.attrs.iter().filter(|attr| is_lint(attr));
    let vis = &item.vis;
    let (fn_token, ident, generics) = (&sig.fn_token, &sig.ident, &sig.generics);
    let where_clause = &generics.where_clause;
    let body = &item.body;
    let fn_name = ident.unraw().to_string();
    // Explicit generic arguments for the inner call, unless rustc forbids them
    // (`impl Trait` arguments) or there are none to give.
    let explicit: Vec<TokenStream> = generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Type(t) => Some(t.ident.clone()),
            GenericParam::Const(c) => Some(c.ident.clone()),
            GenericParam::Lifetime(_) => None,
        })
        .map(|ident| quote!(#ident))
        .collect();
    let turbofish = if explicit.is_empty() || impl_trait_args {
        quote!()
    } else {
        quote!(::<#(#explicit),*>)
    };
    let decl = Ident::new("__NET_EVENT", Span::mixed_site());
    let value = Ident::new("value", Span::mixed_site());
    // The one `Serialize` check, spanned at the return type so that rustc reports it
    // there. A tuple (or `()`) is the subscriber's argument list; any other type is one
    // argument.
    let payload = match output {
        Some(ty @ Type::Tuple(_)) => {
            quote_spanned!(ty.span()=> #krate::__private::payload::<#ty>(&#value))
        }
        Some(ty) => quote_spanned!(ty.span()=> #krate::__private::payload::<(#ty,)>(&(#value,))),
        None => quote_spanned!(sig.ident.span()=> #krate::__private::payload::<()>(&#value)),
    };
    let location = quote_spanned! {sig.ident.span()=>
        ::core::concat!(::core::file!(), ":", ::core::line!())
    };
    Ok(quote! {
        #(#attrs)*
        #vis #fn_token #ident #generics (#(#outer_params),*) -> #krate::Publish #where_clause {
            #[allow(non_upper_case_globals)]
            #[#krate::__private::linkme::distributed_slice(#krate::__private::EVENTS)]
            #[linkme(crate = #krate::__private::linkme)]
            static #decl: #krate::__private::EventDecl = #krate::__private::EventDecl {
                name: #name,
                path: ::core::concat!(::core::module_path!(), "::", #fn_name),
                location: #location,
            };
            // The user's function as written; it shadows this one inside this body.
            #(#lints)*
            #sig #body
            let #value = #ident #turbofish (#(#call_args),*);
            #krate::__private::publish(&#decl, #payload)
        }
    })
}

fn has_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn expand_to_string(args: TokenStream, item: TokenStream) -> String {
        let tokens = expand(args, item);
        syn::parse2::<syn::File>(tokens.clone()).expect("the expansion parses as items");
        tokens.to_string()
    }

    #[test]
    fn single_value_payload_is_one_argument() {
        let out = expand_to_string(
            quote!("line"),
            quote!(
                pub fn line(text: &str) -> String {
                    text.to_owned()
                }
            ),
        );
        assert!(
            out.contains("pub fn line (text : & str) -> :: net :: Publish"),
            "{out}"
        );
        assert!(out.contains("name : \"line\""));
        assert!(out.contains("fn line (text : & str) -> String { text . to_owned () }"));
        assert!(
            out.contains("payload :: < (String ,) > (& (value ,))"),
            "{out}"
        );
    }

    #[test]
    fn tuple_payload_is_the_argument_list() {
        let out = expand_to_string(
            quote!(name = "moved", crate = renamed),
            quote!(
                fn moved<T: Into<i64>>(mut x: T, (a, b): (i64, i64)) -> (i64, i64) {
                    (x.into() + a, b)
                }
            ),
        );
        assert!(
            out.contains(
                "fn moved < T : Into < i64 > > (x : T , arg1 : (i64 , i64)) -> renamed :: Publish"
            ),
            "{out}"
        );
        assert!(out.contains("moved :: < T > (x , arg1)"), "{out}");
        assert!(
            out.contains("payload :: < (i64 , i64) > (& value)"),
            "{out}"
        );
        assert!(!out.contains(":: net ::"));
    }

    #[test]
    fn every_mistake_is_reported() {
        let out = expand(
            quote!(color = 1),
            quote!(
                async fn f(&self) -> impl Serialize {
                    0
                }
            ),
        )
        .to_string();
        // unknown argument, missing name, async, self, impl Trait
        assert_eq!(out.matches("compile_error").count(), 5, "{out}");
    }
}
