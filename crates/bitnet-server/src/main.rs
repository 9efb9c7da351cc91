//! `bitnet-server`: the same as `bitnet serve` (for builds without the CLI crate).
fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(bitnet_server::main(&argv));
}
