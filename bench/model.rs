//! Model benchmark: `cargo bench --bench model [-- BITNET-BENCH-ARGS]`.
//!
//! The same measurement as `bitnet bench` (pp128 and tg64 on a model of the real
//! BitNet-b1.58-2B-4T shape that the project generates once and caches under `target/`,
//! median and range of 5 runs at 1 and 2 threads, load time, peak RSS), run as a bench target
//! so `cargo bench` reaches it. Arguments after `--` go to `bitnet bench`, e.g.
//! `cargo bench --bench model -- --weights i2_s,tq2_0 --embd f16,q6_k -d 0,512,2048`.

fn main() {
    // cargo passes `--bench`; the rest are bitnet bench arguments.
    let mut argv = vec!["bench".to_string()];
    argv.extend(std::env::args().skip(1).filter(|a| a != "--bench"));
    std::process::exit(bitnet_cli::main(argv));
}
