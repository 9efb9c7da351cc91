//! The `bitnet` command-line tool: one binary with subcommands, like llama.cpp's tools.

mod args;
mod bench;
mod generate;
mod i2s_layout;
mod inspect;
mod make_model;
pub mod modelgen;
mod trace;

use args::Args;
use bitnet::{Error, Result};

const HELP: &str = "usage: bitnet COMMAND [OPTIONS]   (bitnet COMMAND --help for details)

commands:
  generate    generate text from a prompt (greedy or sampled)
  trace       greedy decoding printed in the golden-trace format (PROMPT/TOKEN/TOPK/TIME)
  bench       prompt and generation speed (pp/tg tokens/s), like llama-bench
  inspect     print a GGUF file's metadata and tensor table
  i2s-layout  which I2_S layout (x86 128 / ARM 64 blocks) a model's weights are in; rewrite it
  make-model  write a random-weight BitNet b1.58 model (tiny or 2B-4T shape)
  serve       an OpenAI-compatible HTTP server with continuous batching (docs/server.md)";

/// Runs the CLI on `argv` (without the program name). Returns the process exit code.
pub fn main(argv: Vec<String>) -> i32 {
    // The server parses its own options (crates/bitnet-server).
    #[cfg(feature = "serve")]
    if argv.first().is_some_and(|c| c == "serve") {
        return bitnet_server::main(&argv[1..]);
    }
    match run(argv) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bitnet: error: {e}");
            1
        }
    }
}

fn run(argv: Vec<String>) -> Result<()> {
    let Some((cmd, rest)) = argv.split_first() else {
        println!("{HELP}");
        return Ok(());
    };
    let mut args = Args::new(rest.to_vec());
    let help = args.switch(&["-h", "--help"]);
    let (text, f): (&str, fn(Args) -> Result<()>) = match cmd.as_str() {
        "generate" => (generate::HELP, generate::run),
        "trace" => (trace::HELP, trace::run),
        "bench" => (bench::HELP, bench::run),
        "inspect" => (inspect::HELP, inspect::run),
        "i2s-layout" => (i2s_layout::HELP, i2s_layout::run),
        "make-model" => (make_model::HELP, make_model::run),
        "-h" | "--help" | "help" => {
            println!("{HELP}");
            return Ok(());
        }
        _ => {
            return Err(Error::invalid_argument(format!(
                "unknown command {cmd:?}\n\n{HELP}"
            )))
        }
    };
    if help {
        println!("{text}");
        return Ok(());
    }
    f(args)
}

/// Fails on any argument left over after a command took its options.
fn no_positionals(args: &mut Args) -> Result<()> {
    match args.positionals()?.first() {
        Some(p) => Err(Error::invalid_argument(format!(
            "unexpected argument {p:?} (see --help)"
        ))),
        None => Ok(()),
    }
}
