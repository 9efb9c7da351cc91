//! The C face end to end: package the libraries this `cargo test` run built with CMake, install
//! them into a temporary prefix, build the examples and the C tests against that prefix with
//! `find_package(bitnet)`, and run them with ctest. Skipped (with a message) when cmake is not
//! installed, unless BITNET_REQUIRE_TEST_DATA=1.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where cargo put the cdylib/staticlib it built for this test run (next to the test binary).
fn built_lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().expect("deps directory").to_path_buf();
    for lib in ["libbitnet.so", "libbitnet.a"] {
        assert!(
            dir.join(lib).exists(),
            "{} missing: cargo did not build it",
            dir.join(lib).display()
        );
    }
    dir
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) {
    // cargo test puts target/<profile> on LD_LIBRARY_PATH, which outranks the programs' RUNPATH
    // and may hold an older libbitnet.so than the one installed into the prefix: only a path
    // the test sets itself is kept.
    if !cmd.get_envs().any(|(k, _)| k == "LD_LIBRARY_PATH") {
        cmd.env_remove("LD_LIBRARY_PATH");
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Installs the package into `<tmp>/prefix` and returns the prefix; None when cmake is missing.
fn install_package(work: &Path) -> Option<PathBuf> {
    if !have("cmake") {
        assert!(
            !bitnet_testdata::required(),
            "cmake is not installed and BITNET_REQUIRE_TEST_DATA=1"
        );
        eprintln!("SKIPPED: cmake is not installed");
        return None;
    }
    let prefix = work.join("prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    let build = work.join("package");
    run(Command::new("cmake")
        .arg("-S")
        .arg(root())
        .arg("-B")
        .arg(&build)
        .arg(format!(
            "-DBITNET_PREBUILT_DIR={}",
            built_lib_dir().display()
        ))
        .arg("-DCMAKE_BUILD_TYPE=Release"));
    run(Command::new("cmake").arg("--build").arg(&build).arg("-j2"));
    // The prefix is given only at install time (configured for the default /usr/local): the
    // installed files must follow it (bitnet.pc used to keep the configured prefix).
    run(Command::new("cmake")
        .arg("--install")
        .arg(&build)
        .arg("--prefix")
        .arg(&prefix));
    Some(prefix)
}

/// Configures tests/c against the package installed in `prefix` into `<work>/<name>`, builds it
/// and runs ctest; returns ctest's output. Panics when a test fails.
fn build_and_ctest(work: &Path, name: &str, prefix: &Path, extra: &[String]) -> String {
    let data = bitnet_testdata::root();
    let tests = work.join(name);
    let _ = std::fs::remove_dir_all(&tests);
    run(Command::new("cmake")
        .arg("-S")
        .arg(root().join("tests/c"))
        .arg("-B")
        .arg(&tests)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .arg(format!("-DBITNET_TEST_DATA={}", data.display()))
        .args(extra)
        .arg("-DCMAKE_BUILD_TYPE=Release"));
    run(Command::new("cmake").arg("--build").arg(&tests).arg("-j2"));
    let out = Command::new("ctest")
        .args(["--output-on-failure", "-j2"])
        .current_dir(&tests)
        .env_remove("LD_LIBRARY_PATH") // as in run(): the installed library, not cargo's
        .output()
        .expect("ctest");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ctest failed\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Number of golden greedy traces and golden sampler-chain traces (each one ctest test).
fn golden_trace_count() -> usize {
    let count = |dir: &Path| {
        std::fs::read_dir(dir).map_or(0, |d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "trace"))
                .count()
        })
    };
    let golden = bitnet_testdata::root().join("golden");
    let greedy: usize = bitnet_testdata::MODELS
        .iter()
        .map(|m| count(&golden.join(m)))
        .sum();
    let chains = count(&golden.join("sampling"));
    assert_eq!((greedy, chains), (36, 32), "golden trace counts");
    greedy + chains
}

fn assert_ran(stdout: &str, expected: usize) {
    let summary = format!("0 tests failed out of {expected}");
    assert!(
        stdout.contains(&summary),
        "expected \"{summary}\" in\n{stdout}"
    );
}

/// 2 model-free tests (api_basics shared and static); with the shared data also api_model,
/// bad_input, bad_input_files, threads, the 3 examples, hostile_models, hostile_api,
/// api_llama_h, api_embeddings, api_state_params, api_samplers, api_model_io, api_quantize and
/// api_init_from_user.
const MODEL_FREE_TESTS: usize = 2;
const MODEL_TESTS: usize = 4 + 3 + 2 + 1 + 1 + 1 + 1 + 1 + 2;
/// memcheck runs (with valgrind): bad_input, bad_input_files, threads, the 3 examples, the
/// tracer, hostile_models, hostile_api, api_llama_h, api_embeddings, api_state_params,
/// api_samplers, api_model_io, api_quantize and api_init_from_user.
const MEMCHECK_TESTS: usize = 7 + 2 + 1 + 1 + 1 + 1 + 1 + 2;

#[test]
fn c_programs_build_against_the_installed_package_and_pass() {
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c_api");
    let Some(prefix) = install_package(&work) else {
        return;
    };
    for f in [
        "include/bitnet.h",
        "lib/libbitnet.so",
        "lib/libbitnet.a",
        "lib/cmake/bitnet/bitnetConfig.cmake",
        "lib/cmake/bitnet/bitnetConfigVersion.cmake",
        "lib/pkgconfig/bitnet.pc",
    ] {
        assert!(prefix.join(f).exists(), "install lacks {f}");
    }
    check_installed_library(&prefix);

    let tracer = prefix.join("bin/bitnet-trace");
    assert!(tracer.exists(), "install lacks bin/bitnet-trace");

    // Without the shared models only the model-free tests exist (skipped here, an error in CI).
    let have_data = bitnet_testdata::path("models/tiny-spm-f32.gguf").is_some();
    let stdout = build_and_ctest(
        &work,
        "tests",
        &prefix,
        &[format!("-DBITNET_TRACE={}", tracer.display())],
    );
    let expected = if have_data {
        let memcheck = if have("valgrind") { MEMCHECK_TESTS } else { 0 };
        MODEL_FREE_TESTS + MODEL_TESTS + memcheck + golden_trace_count()
    } else {
        MODEL_FREE_TESTS
    };
    assert_ran(&stdout, expected);
}

/// The same C tests and examples built with AddressSanitizer (leak checker on) and
/// UndefinedBehaviorSanitizer (tests/c BITNET_SANITIZE=ON; the Rust library as built): no
/// report. The tracer is the instrumented one built there.
#[test]
fn c_programs_pass_under_address_and_undefined_sanitizers() {
    if !have("cc") {
        assert!(
            !bitnet_testdata::required(),
            "cc missing and BITNET_REQUIRE_TEST_DATA=1"
        );
        eprintln!("SKIPPED: no C compiler");
        return;
    }
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c_api_asan");
    let Some(prefix) = install_package(&work) else {
        return;
    };
    let have_data = bitnet_testdata::path("models/tiny-spm-f32.gguf").is_some();
    let stdout = build_and_ctest(
        &work,
        "tests",
        &prefix,
        &["-DBITNET_SANITIZE=ON".to_string()],
    );
    // Only one golden greedy trace per model (prompt "space": 6) and the sampler chains of one
    // prompt ("short_en": 16): the C code they run is the same for every prompt.
    let expected = if have_data {
        golden_trace_count(); // the data is complete
        MODEL_FREE_TESTS + MODEL_TESTS + 6 + 16
    } else {
        MODEL_FREE_TESTS
    };
    assert_ran(&stdout, expected);
}

/// The installed shared library: the version chain libbitnet.so -> .so.<SOVERSION> ->
/// .so.<VERSION>, the SONAME, no debug sections; bitnet.pc names the install prefix.
fn check_installed_library(prefix: &Path) {
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let soversion = if major == "0" {
        format!("0.{}", env!("CARGO_PKG_VERSION_MINOR"))
    } else {
        major.to_string()
    };
    let lib = prefix.join("lib");
    let soname = format!("libbitnet.so.{soversion}");
    let real = format!("libbitnet.so.{}", env!("CARGO_PKG_VERSION"));
    let link = |name: &str| {
        std::fs::read_link(lib.join(name))
            .unwrap_or_else(|e| panic!("lib/{name} is not a symlink: {e}"))
    };
    assert_eq!(link("libbitnet.so"), Path::new(&soname));
    assert_eq!(link(&soname), Path::new(&real));
    assert!(lib.join(&real).is_file());
    if have("readelf") {
        let out = Command::new("readelf")
            .args(["-d", "-S", "-W"])
            .arg(lib.join(&real))
            .output()
            .expect("readelf");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("Library soname: [{soname}]")),
            "SONAME is not {soname}"
        );
        assert!(
            !text.contains(".debug_info") && !text.contains(".debug_line"),
            "the installed library still has debug sections"
        );
    }
    let pc = std::fs::read_to_string(lib.join("pkgconfig/bitnet.pc")).unwrap();
    assert!(
        pc.lines()
            .any(|l| l == format!("prefix={}", prefix.display())),
        "bitnet.pc does not name the install prefix:\n{pc}"
    );
}

/// pkg-config users: `cc $(pkg-config --cflags --libs bitnet)` links and runs, shared and static.
#[test]
fn pkg_config_file_links_shared_and_static() {
    if !have("pkg-config") || !have("cc") {
        assert!(
            !bitnet_testdata::required(),
            "pkg-config or cc missing and BITNET_REQUIRE_TEST_DATA=1"
        );
        eprintln!("SKIPPED: pkg-config or cc is not installed");
        return;
    }
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c_api_pc");
    let Some(prefix) = install_package(&work) else {
        return;
    };
    let pc = |args: &[&str]| {
        let out = Command::new("pkg-config")
            .args(args)
            .arg("bitnet")
            .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
            .output()
            .expect("pkg-config");
        assert!(out.status.success(), "pkg-config {args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    };
    let src = root().join("tests/c/api_basics.c");
    let include = format!("-I{}", root().join("tests/c").display());
    for (name, flags) in [
        ("shared", pc(&["--cflags", "--libs"])),
        ("static", pc(&["--cflags", "--libs", "--static"])),
    ] {
        let exe = work.join(format!("api_basics_pc_{name}"));
        let mut cc = Command::new("cc");
        cc.arg(&src).arg(&include).arg("-o").arg(&exe);
        for flag in flags.split_whitespace() {
            if name == "static" && flag == "-lbitnet" {
                // Insist on the archive: -lbitnet alone picks the .so when both are installed.
                cc.args(["-Wl,-Bstatic", "-lbitnet", "-Wl,-Bdynamic"]);
            } else {
                cc.arg(flag);
            }
        }
        run(&mut cc);
        let mut exe_cmd = Command::new(&exe);
        if name == "shared" {
            exe_cmd.env("LD_LIBRARY_PATH", prefix.join("lib"));
        }
        run(&mut exe_cmd);
    }
}
