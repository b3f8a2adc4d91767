//! Checks a connected function's signature and sorts its parameters: wire ones, `Caller`,
//! `State<T>`.

use syn::visit::Visit;
use syn::{
    FnArg, GenericArgument, Ident, Lifetime, Pat, PathArguments, ReturnType, Signature, Type,
    TypeImplTrait, TypeReference,
};

use crate::errors::Errors;

/// One parameter of the user's function, in order.
pub(crate) enum Param<'a> {
    /// Sent by the caller: part of the generated function's parameters and of the decoded
    /// tuple.
    Wire { ident: &'a Ident, ty: &'a Type },
    /// Filled with the calling peer's `Caller` by the handler.
    Caller,
    /// `net::State<T>`: filled with the state the serving peer was given.
    State { ty: &'a Type },
}

/// What the expansion needs to know about a checked signature.
pub(crate) struct Analysis<'a> {
    pub(crate) params: Vec<Param<'a>>,
    /// The written return type; `None` for `()` by omission.
    pub(crate) output: Option<&'a Type>,
    /// `Result<T, E>`: `Err` travels back as the caller's typed error.
    pub(crate) returns_result: bool,
}

impl<'a> Analysis<'a> {
    pub(crate) fn wire(&self) -> impl Iterator<Item = (&'a Ident, &'a Type)> + '_ {
        self.params.iter().filter_map(|param| match param {
            Param::Wire { ident, ty } => Some((*ident, *ty)),
            Param::Caller | Param::State { .. } => None,
        })
    }
}

/// Checks `sig`, recording every problem in `errors`.
pub(crate) fn analyze<'a>(sig: &'a Signature, oneway: bool, errors: &mut Errors) -> Analysis<'a> {
    if let Some(token) = &sig.constness {
        errors.spanned(token, "a connected function cannot be `const`");
    }
    if let Some(token) = &sig.unsafety {
        errors.spanned(
            token,
            "a connected function cannot be `unsafe`: a remote caller cannot uphold its contract",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(
            abi,
            "a connected function cannot be `extern`: `net` calls it",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(variadic, "a connected function cannot be variadic");
    }
    const GENERIC: &str = "a connected function cannot be generic: its arguments and result \
                           need concrete types to cross the wire";
    if !sig.generics.params.is_empty() {
        errors.spanned(&sig.generics, GENERIC);
    }
    if let Some(clause) = &sig.generics.where_clause {
        errors.spanned(clause, GENERIC);
    }

    let mut params = Vec::new();
    let mut has_caller = false;
    for input in &sig.inputs {
        let typed = match input {
            FnArg::Receiver(receiver) => {
                errors.spanned(
                    receiver,
                    "a connected function cannot take `self`; make it a free function",
                );
                continue;
            }
            FnArg::Typed(typed) => typed,
        };
        if is_caller(&typed.ty) {
            if has_caller {
                errors.spanned(&typed.ty, "only one `Caller` parameter is allowed");
            }
            has_caller = true;
            params.push(Param::Caller);
            continue;
        }
        if is_state(&typed.ty) {
            params.push(Param::State { ty: &typed.ty });
            continue;
        }
        check_owned(&typed.ty, Position::Argument, errors);
        match &*typed.pat {
            Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                params.push(Param::Wire {
                    ident: &pat.ident,
                    ty: &typed.ty,
                });
            }
            pat => errors.spanned(
                pat,
                "patterns are not allowed in a connected function's arguments; name the \
                 argument and destructure it in the body",
            ),
        }
    }

    let output = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some(&**ty),
    };
    if let Some(ty) = output {
        check_owned(ty, Position::Return, errors);
        if oneway && !is_unit(ty) {
            errors.spanned(
                ty,
                "a oneway function returns nothing to its caller; remove the return type or \
                 drop `oneway`",
            );
        }
    }
    Analysis {
        params,
        output,
        returns_result: output.is_some_and(is_result),
    }
}

/// Whether `ty` is `Result<T, E>` under any path (`std::result::Result`, `io::Result` with
/// two arguments, ...).
pub(crate) fn is_result(ty: &Type) -> bool {
    let Type::Path(path) = ungroup(ty) else {
        return false;
    };
    let Some(last) = path.path.segments.last() else {
        return false;
    };
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    path.qself.is_none()
        && last.ident == "Result"
        && args.args.len() == 2
        && args
            .args
            .iter()
            .all(|arg| matches!(arg, GenericArgument::Type(_)))
}

/// Whether `ty` names `Caller` (`Caller`, `net::Caller`, ...): the peer, not an argument.
pub(crate) fn is_caller(ty: &Type) -> bool {
    match ungroup(ty) {
        Type::Path(path) => {
            path.qself.is_none()
                && path
                    .path
                    .segments
                    .last()
                    .is_some_and(|last| last.ident == "Caller")
        }
        _ => false,
    }
}

/// Whether `ty` names `State<T>` (`State<Db>`, `net::State<Db>`, ...): filled in by the
/// serving peer, not an argument.
pub(crate) fn is_state(ty: &Type) -> bool {
    let Type::Path(path) = ungroup(ty) else {
        return false;
    };
    let Some(last) = path.path.segments.last() else {
        return false;
    };
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    path.qself.is_none()
        && last.ident == "State"
        && args.args.len() == 1
        && matches!(args.args.first(), Some(GenericArgument::Type(_)))
}

fn is_unit(ty: &Type) -> bool {
    matches!(ungroup(ty), Type::Tuple(tuple) if tuple.elems.is_empty())
}

/// Looks through the invisible groups of `macro_rules!` fragments and parentheses.
fn ungroup(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Group(group) => ty = &group.elem,
            Type::Paren(paren) => ty = &paren.elem,
            _ => return ty,
        }
    }
}

#[derive(Clone, Copy)]
enum Position {
    Argument,
    Return,
}

/// Rejects what cannot be sent and rebuilt on the other side: borrows, non-`'static`
/// lifetimes, `impl Trait`.
fn check_owned(ty: &Type, position: Position, errors: &mut Errors) {
    OwnedCheck { position, errors }.visit_type(ty);
}

struct OwnedCheck<'e> {
    position: Position,
    errors: &'e mut Errors,
}

impl OwnedCheck<'_> {
    fn must_be_owned(&self) -> &'static str {
        match self.position {
            Position::Argument => "arguments must be owned serde types",
            Position::Return => "the return type must be an owned serde type",
        }
    }
}

impl<'ast> Visit<'ast> for OwnedCheck<'_> {
    fn visit_type_reference(&mut self, reference: &'ast TypeReference) {
        let message = match self.position {
            Position::Argument if is_caller(&reference.elem) => {
                "take the `Caller` by value: `caller: net::Caller`".to_owned()
            }
            _ => format!("{} (use String instead of &str)", self.must_be_owned()),
        };
        self.errors.spanned(reference.and_token, message);
    }

    fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
        if lifetime.ident != "static" {
            let message = format!("{}; remove the lifetime", self.must_be_owned());
            self.errors.spanned(lifetime, message);
        }
    }

    fn visit_type_impl_trait(&mut self, impl_trait: &'ast TypeImplTrait) {
        self.errors.spanned(
            impl_trait,
            "`impl Trait` cannot cross the wire; use a concrete serde type",
        );
    }
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    fn check(sig: Signature, oneway: bool) -> Result<(usize, bool, bool), Vec<String>> {
        let mut errors = Errors::default();
        let analysis = analyze(&sig, oneway, &mut errors);
        errors
            .finish()
            .map(|()| {
                let has_caller = analysis.params.iter().any(|p| matches!(p, Param::Caller));
                (analysis.wire().count(), has_caller, analysis.returns_result)
            })
            .map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn result_detection() {
        assert!(is_result(&parse_quote!(Result<i64, String>)));
        assert!(is_result(&parse_quote!(std::result::Result<(), MyError>)));
        assert!(is_result(&parse_quote!(
            ::core::result::Result<Vec<u8>, net::Flag>
        )));
        assert!(!is_result(&parse_quote!(io::Result<i64>)));
        assert!(!is_result(&parse_quote!(Result)));
        assert!(!is_result(&parse_quote!(Option<Result<i64, String>>)));
        assert!(!is_result(&parse_quote!(<T as Trait>::Result<i64, String>)));
        assert!(!is_result(&parse_quote!(Result<'static, i64>)));
    }

    #[test]
    fn caller_detection() {
        assert!(is_caller(&parse_quote!(Caller)));
        assert!(is_caller(&parse_quote!(net::Caller)));
        assert!(is_caller(&parse_quote!(::net::Caller)));
        assert!(!is_caller(&parse_quote!(CallerId)));
        assert!(!is_caller(&parse_quote!(Option<Caller>)));
    }

    #[test]
    fn state_detection() {
        assert!(is_state(&parse_quote!(State<Db>)));
        assert!(is_state(&parse_quote!(
            net::State<std::sync::Mutex<Vec<u8>>>
        )));
        assert!(!is_state(&parse_quote!(State)));
        assert!(!is_state(&parse_quote!(StateOf<Db>)));
        assert!(!is_state(&parse_quote!(Option<State<Db>>)));
        let mut errors = Errors::default();
        let sig: Signature = parse_quote!(fn get(key: String, db: net::State<Db>) -> String);
        let analysis = analyze(&sig, false, &mut errors);
        assert!(errors.finish().is_ok());
        assert_eq!(analysis.wire().count(), 1);
        assert!(matches!(analysis.params[1], Param::State { .. }));
    }

    #[test]
    fn plain_signatures_pass() {
        assert_eq!(
            check(parse_quote!(fn multiply(a: i64, mut b: i64) -> i64), false),
            Ok((2, false, false))
        );
        assert_eq!(
            check(
                parse_quote!(async fn lookup(key: String, who: net::Caller) -> Result<String, E>),
                false
            ),
            Ok((1, true, true))
        );
        assert_eq!(
            check(parse_quote!(fn log(line: Cow<'static, str>) -> ()), true),
            Ok((1, false, false))
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let errors = check(
            parse_quote!(const unsafe extern "C" fn f<T>(&self, (a, b): (u8, u8), s: &str, x: impl Serialize, c: Caller, d: Caller) -> Vec<&'a str>),
            true,
        )
        .unwrap_err();
        assert_eq!(errors.len(), 11, "{errors:#?}");
        assert!(errors.contains(
            &"arguments must be owned serde types (use String instead of &str)".to_owned()
        ));
        assert!(errors.contains(&"only one `Caller` parameter is allowed".to_owned()));
        assert!(errors.iter().any(|e| e.starts_with("a oneway function")));
    }

    #[test]
    fn borrowed_caller_is_explained() {
        let errors = check(parse_quote!(fn f(caller: &Caller)), false).unwrap_err();
        assert_eq!(
            errors,
            ["take the `Caller` by value: `caller: net::Caller`"]
        );
    }
}
