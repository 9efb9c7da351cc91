//! `bitnet inspect MODEL`: metadata and tensor table, like gguf-dump.

use super::args::Args;
use bitnet::gguf::GgufFile;
use bitnet::{Error, Result};

pub const HELP: &str = "usage: bitnet inspect MODEL.gguf [--all]

Prints the GGUF header, every metadata key with its type and value (long arrays shortened
unless --all), and the tensor table: name, type, dims (ne0 first), bytes, data offset.";

pub fn run(mut args: Args) -> Result<()> {
    let all = args.switch(&["--all"]);
    let pos = args.positionals()?;
    let [path] = pos.as_slice() else {
        return Err(Error::invalid_argument(format!(
            "inspect takes one MODEL path\n\n{HELP}"
        )));
    };
    let g = GgufFile::open(path)?;
    println!("file:      {path}");
    println!("version:   {}", g.version());
    println!("size:      {} bytes", g.file_size());
    println!("alignment: {}", g.alignment());
    println!("data at:   {}", g.data_offset());
    println!("\n{} metadata keys:", g.metadata().len());
    for (k, v) in g.metadata() {
        let shown = match v {
            bitnet::gguf::Value::Array(a) if all => format!("{a:?}"),
            _ => v.display_short(),
        };
        println!("  {k:<48} {:<7} {shown}", v.value_type().name());
    }
    println!("\n{} tensors:", g.tensors().len());
    println!(
        "  {:<4} {:<32} {:<6} {:<20} {:>12} {:>12}",
        "#", "name", "type", "dims", "bytes", "offset"
    );
    let mut total = 0usize;
    for (i, t) in g.tensors().iter().enumerate() {
        let dims = format!("{:?}", t.dims);
        println!(
            "  {i:<4} {:<32} {:<6} {dims:<20} {:>12} {:>12}",
            t.name,
            t.ty.name(),
            t.size,
            t.offset
        );
        total += t.size;
    }
    println!("\n  tensor data: {total} bytes");
    Ok(())
}
