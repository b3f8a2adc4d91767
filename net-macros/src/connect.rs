//! `#[net::connect]`: the caller-side function, the registry static and the handler.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, Meta, Path};

use crate::args::ConnectArgs;
use crate::errors::Errors;
use crate::item::{is_cfg, is_lint, parse_fn, FnItem};
use crate::signature::{analyze, Analysis, Param};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    try_expand(args, item).unwrap_or_else(|error| error.to_compile_error())
}

pub(crate) fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = ConnectArgs::parse(args, &mut errors);
    let item = match parse_fn(item, "connect") {
        Ok(item) => item,
        Err(error) => return Err(errors.with(error)),
    };
    let analysis = analyze(&item.sig, args.oneway, &mut errors);
    errors.finish()?;
    let expansion = Expansion::new(&args, &item, analysis);
    let caller_fn = expansion.caller_fn();
    let entry = expansion.entry();
    let handler = expansion.handler();
    // The handler goes first: rustc then reports an argument type that does not cross the
    // wire at the spanned check on the user's type before anywhere else.
    Ok(quote! {
        #handler
        #entry
        #caller_fn
    })
}

/// A checked function and the names of the items generated from it.
struct Expansion<'a> {
    args: &'a ConnectArgs,
    krate: &'a Path,
    item: &'a FnItem,
    analysis: Analysis<'a>,
    /// `__NET_ENTRY_<name>`: the registry entry, visible as the function is.
    static_ident: Ident,
    /// `__net_handler_<name>`: runs the user's function on decoded arguments.
    handler_ident: Ident,
}

impl<'a> Expansion<'a> {
    fn new(args: &'a ConnectArgs, item: &'a FnItem, analysis: Analysis<'a>) -> Self {
        let name = item.sig.ident.unraw();
        Expansion {
            args,
            krate: &args.krate,
            item,
            analysis,
            static_ident: format_ident!("__NET_ENTRY_{}", name),
            handler_ident: format_ident!("__net_handler_{}", name),
        }
    }

    fn is_async(&self) -> bool {
        self.item.sig.asyncness.is_some()
    }

    /// `R` of `Call<R, K>`: the written return type, `()` without one.
    fn return_type(&self) -> TokenStream {
        match self.analysis.output {
            Some(ty) => quote!(#ty),
            None => quote!(()),
        }
    }

    /// `K` of `Call<R, K>`.
    fn kind(&self) -> TokenStream {
        let krate = self.krate;
        if self.is_async() {
            quote!(#krate::__private::AsyncFn)
        } else {
            quote!(#krate::__private::SyncFn)
        }
    }

    fn cfgs(&self) -> impl Iterator<Item = &'a Attribute> {
        self.item.attrs.iter().filter(|attr| is_cfg(attr))
    }

    /// `M` of `Call<R, K, M>`: whether `.then` routes a typed `Err` to the error handler.
    fn mode(&self) -> TokenStream {
        let krate = self.krate;
        if self.analysis.returns_result {
            quote!(#krate::__private::Fallible)
        } else {
            quote!(#krate::__private::Plain)
        }
    }

    /// The function the user calls: same name, wire parameters only, returns a `Call`.
    fn caller_fn(&self) -> TokenStream {
        let FnItem {
            attrs, vis, sig, ..
        } = self.item;
        let attrs = attrs.iter().map(allow_instead_of_expect);
        let (fn_token, ident) = (&sig.fn_token, &sig.ident);
        let (krate, ret, kind, mode) = (self.krate, self.return_type(), self.kind(), self.mode());
        let (idents, tys): (Vec<_>, Vec<_>) = self.analysis.wire().unzip();
        let static_ident = &self.static_ident;
        quote! {
            #(#attrs)*
            #vis #fn_token #ident(#(#idents: #tys),*) -> #krate::Call<#ret, #kind, #mode> {
                #krate::__private::call::<#ret, #kind, #mode>(&#static_ident, (#(#idents,)*))
            }
        }
    }

    /// The registry entry, collected by linkme into `ENTRIES`.
    fn entry(&self) -> TokenStream {
        let FnItem { vis, sig, .. } = self.item;
        let krate = self.krate;
        let cfgs = self.cfgs();
        let (static_ident, handler_ident) = (&self.static_ident, &self.handler_ident);
        let name = sig.ident.unraw().to_string();
        let params = self.param_names();
        let tag = match &self.args.tag {
            Some(tag) => quote!(::core::option::Option::Some(#tag)),
            None => quote!(::core::option::Option::None),
        };
        let oneway = self.args.oneway;
        let returns_result = self.analysis.returns_result;
        let location = quote_spanned! {sig.ident.span()=>
            ::core::concat!(::core::file!(), ":", ::core::line!())
        };
        let variant = if self.is_async() {
            quote!(Async)
        } else {
            quote!(Sync)
        };
        quote! {
            #(#cfgs)*
            #[doc(hidden)]
            #[allow(non_upper_case_globals)]
            #[#krate::__private::linkme::distributed_slice(#krate::__private::ENTRIES)]
            #[linkme(crate = #krate::__private::linkme)]
            #vis static #static_ident: #krate::__private::Entry = #krate::__private::Entry {
                name: #name,
                module_path: ::core::module_path!(),
                custom_tag: #tag,
                params: &[#(#params),*],
                oneway: #oneway,
                returns_result: #returns_result,
                location: #location,
                handler: #krate::__private::Handler::#variant(#handler_ident),
            };
        }
    }

    fn param_names(&self) -> Vec<String> {
        self.analysis
            .wire()
            .map(|(ident, _)| ident.unraw().to_string())
            .collect()
    }

    /// Decodes the arguments, runs the user's function (an inner item, body untouched) and
    /// encodes what it returned.
    fn handler(&self) -> TokenStream {
        let FnItem {
            attrs, sig, body, ..
        } = self.item;
        let krate = self.krate;
        let cfgs = self.cfgs();
        let lints = attrs.iter().filter(|attr| is_lint(attr));
        let handler_ident = &self.handler_ident;
        // The handler's own locals are mixed-site: no user token can name them.
        let args = Ident::new("args", Span::mixed_site());
        let uses_caller = self
            .analysis
            .params
            .iter()
            .any(|p| matches!(p, Param::Caller | Param::State { .. }));
        let caller = Ident::new(
            if uses_caller { "caller" } else { "_caller" },
            Span::mixed_site(),
        );
        let locals: Vec<Ident> = (0..self.analysis.wire().count())
            .map(|i| Ident::new(&format!("arg{i}"), Span::mixed_site()))
            .collect();
        let state_tys: Vec<&syn::Type> = self
            .analysis
            .params
            .iter()
            .filter_map(|p| match p {
                Param::State { ty } => Some(*ty),
                _ => None,
            })
            .collect();
        let state_locals: Vec<Ident> = (0..state_tys.len())
            .map(|i| Ident::new(&format!("state{i}"), Span::mixed_site()))
            .collect();
        let mut wire_locals = locals.iter();
        let mut states = state_locals.iter();
        let call_args = self.analysis.params.iter().map(|param| match param {
            Param::Wire { .. } => wire_locals.next(),
            Param::Caller => Some(&caller),
            Param::State { .. } => states.next(),
        });
        let tys: Vec<_> = self.analysis.wire().map(|(_, ty)| ty).collect();
        let asserts = tys
            .iter()
            .map(|ty| quote_spanned!(ty.span()=> #krate::__private::assert_arg::<#ty>();));
        let assert_return = self
            .analysis
            .output
            .map(|ty| quote_spanned!(ty.span()=> #krate::__private::assert_return::<#ty>();));
        let names = self.param_names();
        let encode = if self.analysis.returns_result {
            quote!(result)
        } else {
            quote!(value)
        };
        let ident = &sig.ident;
        // The user's function is an item of an inner block that only names it, so that it
        // cannot shadow the handler's locals (a function called `args` or `arg0`).
        let function = Ident::new("function", Span::mixed_site());
        let call = quote!(#function(#(#call_args),*));

        let missing = if sig.asyncness.is_some() {
            quote!(#krate::__private::boxed(async move { outcome }))
        } else {
            quote!(outcome)
        };
        // Spanned at the parameter's type, so that a `State` of another crate is reported
        // on the user's code.
        let fetch_states = state_tys.iter().zip(&state_locals).map(|(ty, local)| {
            quote_spanned! {ty.span()=>
                let #local: #ty = match <#ty as #krate::__private::FromCaller>::from_caller(&#caller) {
                    ::core::result::Result::Ok(state) => state,
                    ::core::result::Result::Err(outcome) => return #missing,
                };
            }
        });
        let (output, bad_args, run) = if let Some(async_token) = &sig.asyncness {
            // Spanned at the user's `async`, path included, so that a future that is not
            // `Send` is reported there rather than at the attribute.
            let span = async_token.span;
            let boxed_krate = respan(krate.to_token_stream(), span);
            let run = quote_spanned! {span=>
                #boxed_krate::__private::boxed(async move {
                    #krate::__private::Outcome::#encode(&#call.await)
                })
            };
            (
                quote!(#krate::__private::BoxFuture<#krate::__private::Outcome>),
                quote! {
                    #krate::__private::boxed(async move {
                        #krate::__private::Outcome::BadArgs(error)
                    })
                },
                run,
            )
        } else {
            (
                quote!(#krate::__private::Outcome),
                quote!(#krate::__private::Outcome::BadArgs(error)),
                quote!(#krate::__private::Outcome::#encode(&#call)),
            )
        };
        quote! {
            #(#cfgs)*
            #[doc(hidden)]
            #[allow(non_snake_case)]
            fn #handler_ident(
                #args: #krate::__private::Args<'_>,
                #caller: #krate::__private::Caller,
            ) -> #output {
                #(#asserts)*
                #assert_return
                let (#(#locals,)*): (#(#tys,)*) = match #args.decode(&[#(#names),*]) {
                    ::core::result::Result::Ok(decoded) => decoded,
                    ::core::result::Result::Err(error) => return #bad_args,
                };
                #(#fetch_states)*
                let #function = {
                    #(#lints)*
                    #sig #body
                    #ident
                };
                #run
            }
        }
    }
}

/// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            token.set_span(span);
            token
        })
        .collect()
}

/// The caller-side function's copy of a user attribute. `#[expect(lint)]` becomes
/// `#[allow(lint)]` there: the expectation is met (or not) by the body, which lives in the
/// handler's copy.
pub(crate) fn allow_instead_of_expect(attr: &Attribute) -> Attribute {
    let mut attr = attr.clone();
    if let Meta::List(list) = &mut attr.meta {
        if list.path.is_ident("expect") {
            list.path = Ident::new("allow", list.path.span()).into();
        }
    }
    attr
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
    fn sync_function() {
        let out = expand_to_string(
            quote!(),
            quote!(
                pub fn multiply(a: i64, mut b: i64) -> i64 {
                    b *= a;
                    b
                }
            ),
        );
        assert!(out.contains("pub fn multiply (a : i64 , b : i64) -> :: net :: Call < i64 , :: net :: __private :: SyncFn , :: net :: __private :: Plain >"));
        assert!(out.contains("pub static __NET_ENTRY_multiply"));
        assert!(out.contains("params : & [\"a\" , \"b\"]"));
        assert!(out.contains("Handler :: Sync (__net_handler_multiply)"));
        assert!(out.contains("fn multiply (a : i64 , mut b : i64) -> i64 { b *= a ; b }"));
        assert!(out.contains("Outcome :: value"));
    }

    #[test]
    fn async_result_function_with_caller() {
        let out = expand_to_string(
            quote!("Lookup", crate = renamed),
            quote!(
                async fn lookup(who: Caller, key: String) -> Result<String, E> {
                    todo!()
                }
            ),
        );
        assert!(out.contains(
            "fn lookup (key : String) -> renamed :: Call < Result < String , E > , renamed :: __private :: AsyncFn , renamed :: __private :: Fallible >"
        ));
        assert!(out.contains("custom_tag : :: core :: option :: Option :: Some (\"Lookup\")"));
        assert!(out.contains("returns_result : true"));
        assert!(out.contains("Handler :: Async (__net_handler_lookup)"));
        assert!(out.contains("Outcome :: result"));
        assert!(!out.contains(":: net ::"));
    }

    #[test]
    fn errors_replace_the_expansion() {
        let out = expand(
            quote!(oneway),
            quote!(
                fn f(&self, x: &str) -> u8 {
                    0
                }
            ),
        )
        .to_string();
        assert_eq!(out.matches("compile_error").count(), 3, "{out}");
        assert!(!out.contains("__NET_CONNECTION"));
    }
}
