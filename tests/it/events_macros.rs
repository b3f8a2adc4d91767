//! The shapes `#[net::event]` and `#[net::subscribe]` accept: expansions that compile
//! without the prelude and through a renamed crate, event functions with borrowed and
//! generic arguments, and the payload each return type makes.

use crate::support::loopback;

/// Nothing is in scope here but what is spelled out, so a relative path or a prelude name
/// in an expansion fails to compile.
mod no_prelude {
    #![no_implicit_prelude]

    #[::net::event("hygiene.moved")]
    pub fn moved(x: i64, y: i64) -> (i64, i64) {
        (x, y)
    }

    /// Parameters named like the expansion's own locals.
    #[::net::event("hygiene.named")]
    pub fn named(value: &str, payload: u8) -> ::std::string::String {
        let _ = payload;
        ::std::string::ToString::to_string(value)
    }

    #[::net::event("hygiene.tick")]
    pub fn tick() {}

    #[::net::subscribe("hygiene.moved", groups = ["g"], hubs_only, on_host, tag = "hygiene.on_moved")]
    pub fn on_moved(x: i64, y: i64) {
        let _ = (x, y);
    }

    #[::net::subscribe(event = "hygiene.named", peers = ["127.0.0.1:1"])]
    pub async fn on_named(text: ::std::string::String, caller: ::net::Caller) {
        let _ = (text, caller);
    }
}

/// `crate = path` makes the expansions go through `path` rather than `::net`.
mod renamed_crate {
    use ::net as renamed;

    #[renamed::event("renamed.line", crate = renamed)]
    pub fn line(text: &str) -> String {
        text.to_owned()
    }

    #[renamed::subscribe("renamed.line", crate = renamed)]
    pub fn on_line(text: String) {
        let _ = text;
    }
}

/// The body shapes the payload from anything the caller has, borrowed or generic.
#[net::event("shaped")]
fn shaped<T: std::fmt::Display, const N: usize>(
    items: &[T; N],
    mut separator: String,
    (first, second): (u8, u8),
) -> (String, usize, u8) {
    separator.push(' ');
    let joined = items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(&separator);
    (joined, N, first + second)
}

#[net::event("with_impl_arg")]
fn with_impl_arg(value: impl Into<i64>) -> i64 {
    value.into() * 2
}

#[net::event("early")]
fn early(n: i64) -> Result<i64, String> {
    if n < 0 {
        return Err("negative".into());
    }
    let doubled = n.checked_mul(2).ok_or("overflow")?;
    Ok(doubled)
}

fn payload(publication: &net::Publish) -> String {
    let debug = format!("{publication:?}");
    let start = debug.find("payload: Ok(\"").expect(&debug) + "payload: Ok(\"".len();
    let end = debug.rfind("\")").expect(&debug);
    debug[start..end].replace("\\\"", "\"")
}

#[test]
fn each_return_type_makes_its_argument_list() {
    assert_eq!(payload(&no_prelude::moved(1, 2)), "[1,2]");
    assert_eq!(payload(&no_prelude::named("hi", 3)), "[\"hi\"]");
    assert_eq!(payload(&no_prelude::tick()), "[]");
    assert_eq!(payload(&renamed_crate::line("x")), "[\"x\"]");
    assert_eq!(
        payload(&shaped(&[1, 2, 3], ",".into(), (4, 5))),
        "[\"1, 2, 3\",3,9]"
    );
    assert_eq!(payload(&with_impl_arg(21u8)), "[42]");
    // A `Result` is one value, whichever variant; `return` and `?` work in the body.
    assert_eq!(payload(&early(2)), "[{\"Ok\":4}]");
    assert_eq!(payload(&early(-1)), "[{\"Err\":\"negative\"}]");
    assert_eq!(no_prelude::moved(1, 2).event(), "hygiene.moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_lists_the_events_a_program_publishes() {
    let a = net::Peer::start(loopback()).await.unwrap();
    let b = net::Peer::start(loopback()).await.unwrap();
    let info = net::info().on(&a).via(&b).await.unwrap();
    for event in ["early", "hygiene.moved", "renamed.line", "shaped"] {
        assert!(info.events.contains(&event.to_owned()), "{:?}", info.events);
    }
    // Subscriptions registered with `b` follow their filters: `hubs_only` and
    // `peers = [..]` keep these two away from a plain peer.
    // Only this module's: the binary's other modules subscribe to their own events.
    let events = b.subscribe_to(&a).await.unwrap();
    let ours: Vec<&String> = events
        .iter()
        .filter(|e| e.starts_with("hygiene.") || e.starts_with("renamed."))
        .collect();
    assert_eq!(ours, ["renamed.line"]);
}
