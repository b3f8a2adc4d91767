//! Two functions claiming one tag: start-up fails with an error naming both. (Its own test
//! binary, because the registry is per program.)

#[net::connect("shared.tag")]
fn first(x: i64) -> i64 {
    x
}

#[net::connect("shared.tag")]
fn second(x: i64) -> i64 {
    -x
}

#[tokio::test]
async fn a_duplicate_tag_fails_start_up_naming_both_functions() {
    let err = net::Peer::start(net::Config::default().loopback(true).port(0))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, net::Error::DuplicateTag { .. }), "{text}");
    assert!(text.contains("\"shared.tag\""), "{text}");
    assert!(text.contains("duplicate_tag::first"), "{text}");
    assert!(text.contains("duplicate_tag::second"), "{text}");
    assert!(text.contains("tests/duplicate_tag.rs"), "{text}");
    // Local calls refuse too: the program is misconfigured either way.
    assert!(matches!(
        first(1).local(),
        Err(net::Error::DuplicateTag { .. })
    ));
    assert!(matches!(
        second(1).local(),
        Err(net::Error::DuplicateTag { .. })
    ));
}
