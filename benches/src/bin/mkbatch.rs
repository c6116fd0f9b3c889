//! Writes one raw record batch (`application/vnd.cairn.records`) of `N` messages of `SIZE`
//! bytes to stdout, for load generators that post a fixed body (`benches/callgrind.sh`).
//! Usage: `mkbatch N SIZE > batch.bin`.

use anyhow::{bail, Context, Result};
use cairn_storage::BatchBuilder;
use std::io::Write;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [n, size] = args.as_slice() else { bail!("usage: mkbatch N SIZE") };
    let n: usize = n.parse().context("N")?;
    let size: usize = size.parse().context("SIZE")?;
    let value = vec![b'x'; size];
    let mut b = BatchBuilder::new();
    for _ in 0..n {
        b.push(None, Some(&value), []);
    }
    std::io::stdout().write_all(&b.finish(0, 0)?)?;
    Ok(())
}
