//! Misuse of `#[handler]` is a compile error that says what is wrong (trybuild).

#[test]
fn misuse_is_a_clear_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/compile_fail/*.rs");
}
