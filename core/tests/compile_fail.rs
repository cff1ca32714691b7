//! The errors `#[task]` gives for functions that cannot be named tasks: each case in
//! `tests/ui/` with the message a user sees in its `.stderr`. `TRYBUILD=overwrite` rewrites
//! them after a deliberate change of wording.

#[test]
fn task_errors_point_at_the_offending_part() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
