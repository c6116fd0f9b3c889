//! cairnd: the Cairn HTTP server (being built; see issue 3).
fn main() {}
