//! Builds the portable C kernels (`src/kernels/c/*.c`, the "c" kernel table) with `cc`.
//! `-ffp-contract=off` is essential: the kernels must round exactly where the Rust reference
//! rounds, so the compiler may not fuse a*b+c on its own.

fn main() {
    let dir = std::path::Path::new("src/kernels/c");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("src/kernels/c exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    files.sort();
    let mut build = cc::Build::new();
    build
        .files(&files)
        .include(dir)
        .warnings(true)
        .flag_if_supported("-std=c99")
        .flag_if_supported("-ffp-contract=off")
        // x87 (32-bit x86 without SSE) would otherwise keep extra precision between operations.
        .flag_if_supported("-fexcess-precision=standard");
    if build.get_compiler().is_like_msvc() {
        // MSVC does not contract unless /fp:contract or /fp:fast; /fp:precise is its default.
        build.flag("/fp:precise");
    }
    build.compile("bitnet_kernels_c");
    // windows-gnu: mingw-w64's fmaf (which f32::mul_add calls) is not correctly rounded;
    // this one replaces it (src/sys/mingw_fmaf.c).
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        cc::Build::new()
            .file("src/sys/mingw_fmaf.c")
            .warnings(true)
            .flag_if_supported("-ffp-contract=off")
            .flag_if_supported("-fno-builtin")
            .compile("bitnet_mingw_fmaf");
        println!("cargo:rerun-if-changed=src/sys/mingw_fmaf.c");
    }
    println!("cargo:rerun-if-changed=src/kernels/c");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    println!("cargo:rerun-if-changed=src/kernels/c/kernels.h");
    println!("cargo:rerun-if-changed=build.rs");
    // macOS: cargo leaves the dylib's install name at its build path; @rpath lets an installed
    // copy be found through the program's rpath (Linux .so files are linked by name anyway).
    // ELF: SONAME libbitnet.so.<major>, or libbitnet.so.0.<minor> while the major version is 0
    // (CMakeLists.txt installs the matching libbitnet.so -> .so.<SOVERSION> -> .so.<VERSION>).
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if matches!(
        os.as_str(),
        "linux" | "android" | "freebsd" | "netbsd" | "openbsd" | "dragonfly"
    ) {
        let major = env!("CARGO_PKG_VERSION_MAJOR");
        let soversion = if major == "0" {
            format!("0.{}", env!("CARGO_PKG_VERSION_MINOR"))
        } else {
            major.to_string()
        };
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbitnet.so.{soversion}");
    }
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/libbitnet.dylib");
    }
}
