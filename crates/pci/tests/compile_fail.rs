//! Proof, by compiler, that code outside the PCI crate cannot read a collected card, print it,
//! serialize it, clone it out, build one, or write a processor that would receive one. Each
//! file under `tests/compile_fail/` must fail to compile with the error in its `.stderr`
//! (regenerate after a toolchain change with `TRYBUILD=overwrite`, and read the diff).

#[test]
fn code_outside_the_crate_cannot_get_at_card_data() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile_fail/*.rs");
}
