//! `cairn`: the command-line tool (skeleton; see issue 5).
fn main() {}
