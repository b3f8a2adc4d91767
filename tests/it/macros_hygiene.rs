//! The macros' expansions name everything by absolute path: they compile in a module without
//! the prelude, and through a renamed crate with `crate = path`. (`#![no_implicit_prelude]`
//! holds for the module it is written in, so this shares the integration binary.)

/// Nothing is in scope here but what is spelled out, so a relative path or a prelude name
/// (`Ok`, `Some`, `String`, `Box`) in an expansion fails to compile.
mod no_prelude {
    #![no_implicit_prelude]

    #[::net::connect]
    pub fn multiply(a: i64, b: i64) -> i64 {
        a * b
    }

    #[::net::connect("hygiene::greet")]
    pub async fn greet(mut name: ::std::string::String) -> ::std::string::String {
        name.insert_str(0, "hello ");
        name
    }

    #[::net::connect(tag = "hygiene::checked_div")]
    pub fn checked_div(a: i64, b: i64) -> ::core::result::Result<i64, ::std::string::String> {
        match a.checked_div(b) {
            ::core::option::Option::Some(q) => ::core::result::Result::Ok(q),
            ::core::option::Option::None => {
                ::core::result::Result::Err(::std::string::ToString::to_string("division by zero"))
            }
        }
    }

    #[::net::connect(oneway)]
    pub fn note(caller: ::net::Caller, line: ::std::string::String) {
        let _ = (caller, line);
    }

    #[::net::connect]
    pub async fn whoami(_caller: ::net::Caller) {}

    /// Names the expansion uses for its own items and locals, taken by the user.
    #[::net::connect]
    pub fn args(caller: i64, arg0: i64, decoded: i64, error: i64) -> i64 {
        caller + arg0 + decoded + error
    }

    #[::net::flag("HYGIENE")]
    pub fn on_hygiene(_event: &::net::FlagEvent) {}
}

/// `crate = path` makes the expansion go through `path` rather than `::net`.
mod renamed_crate {
    use ::net as renamed;

    #[renamed::connect(crate = renamed)]
    pub fn add(a: i64, b: i64) -> i64 {
        a + b
    }

    #[renamed::connect("renamed::add_async", crate = renamed)]
    pub async fn add_async(a: i64, b: i64) -> i64 {
        a + b
    }

    #[renamed::flag("RENAMED", crate = renamed)]
    fn on_renamed(_event: &renamed::FlagEvent) {}
}

#[test]
fn sync_functions_run_locally() {
    assert_eq!(no_prelude::multiply(6, 7).local().unwrap(), 42);
    assert_eq!(no_prelude::args(1, 2, 3, 4).local().unwrap(), 10);
    assert_eq!(renamed_crate::add(2, 3).local().unwrap(), 5);
    assert_eq!(no_prelude::checked_div(7, 2).local().unwrap(), Ok(3));
}

#[tokio::test]
async fn async_functions_run_locally() {
    let greeting = no_prelude::greet("you".to_owned()).local().await.unwrap();
    assert_eq!(greeting, "hello you");
    assert_eq!(renamed_crate::add_async(2, 3).local().await.unwrap(), 5);
}

/// The `Caller` parameter is not part of the generated function's parameters.
#[test]
fn caller_parameters_are_not_arguments() {
    let _: net::Call<(), _> = no_prelude::note("hi".to_owned());
    let _: net::Call<(), _> = no_prelude::whoami();
}
