fn main() {
    // Die quietly on a closed pipe (`bitnet inspect m.gguf | head`), like C tools do.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE at start-up, before any thread
    // exists, is a plain libc call with no memory effects.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(bitnet_cli::main(std::env::args().skip(1).collect()));
}
