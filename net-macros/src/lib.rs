//! The attribute macros of `net`; use them through the `net` crate, where they are documented.
//!
//! - `#[net::connect]` turns a free function into a remotely callable one: the function
//!   keeps its name and now returns a `net::Call`, and a hidden `Entry` static
//!   registers it with the runtime (see `net::connect`).
//! - `#[net::flag("NAME")]` registers a function that runs when a call answers with the
//!   named flag (see `net::flag`).
//! - `#[net::event("name")]` makes a function publish what it returns to the event's
//!   subscribers (see `net::event`).
//! - `#[net::subscribe("name", ..)]` makes a function an event handler that a started peer
//!   registers with the peers publishing the event (see `net::subscribe`).
//!
//! All expand into `::net::__private` only (or `path::__private` with `crate = path`),
//! never into logic of their own. Mistakes are reported together, each at the token that is
//! wrong.

extern crate proc_macro;

mod args;
mod connect;
mod errors;
mod event;
mod flag;
mod item;
mod signature;
mod subscribe;

use proc_macro::TokenStream;

/// Makes a function callable from other processes. Documented at `net::connect`.
#[proc_macro_attribute]
pub fn connect(args: TokenStream, item: TokenStream) -> TokenStream {
    connect::expand(args.into(), item.into()).into()
}

/// Registers a handler for a named flag. Documented at `net::flag`.
#[proc_macro_attribute]
pub fn flag(args: TokenStream, item: TokenStream) -> TokenStream {
    flag::expand(args.into(), item.into()).into()
}

/// Makes a function publish an event. Documented at `net::event`.
#[proc_macro_attribute]
pub fn event(args: TokenStream, item: TokenStream) -> TokenStream {
    event::expand(args.into(), item.into()).into()
}

/// Makes a function an event handler. Documented at `net::subscribe`.
#[proc_macro_attribute]
pub fn subscribe(args: TokenStream, item: TokenStream) -> TokenStream {
    subscribe::expand(args.into(), item.into()).into()
}
