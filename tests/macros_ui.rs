//! Compile-fail cases of `#[net::connect]` and `#[net::flag]`: each error must point at the
//! user's token that is wrong (tests/ui/*.stderr).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
