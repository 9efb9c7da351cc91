//! `scripts/trace-diff` applies spec/TRACE.md's diff rules: identical traces pass, a changed
//! token names the first divergent step, TOPK logits are held to atol 1e-5, different step
//! counts fail unless the shorter trace stops on an EOG token, malformed input exits 2.
//! Needs python3 (skipped without it, unless BITNET_REQUIRE_TEST_DATA=1).

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> Option<&'static str> {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !bitnet_testdata::required(),
            "python3 is missing and BITNET_REQUIRE_TEST_DATA=1"
        );
        eprintln!("SKIPPED: python3 is not installed");
    }
    ok.then_some("python3")
}

/// Runs trace-diff on two trace texts; returns (exit code, stdout + stderr).
fn diff(expected: &str, actual: &str, extra: &[&str]) -> (i32, String) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("trace_diff");
    std::fs::create_dir_all(&dir).unwrap();
    let id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let (e, a) = (dir.join(format!("{id}.e")), dir.join(format!("{id}.a")));
    std::fs::write(&e, expected).unwrap();
    std::fs::write(&a, actual).unwrap();
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/trace-diff"))
        .args(extra)
        .arg(&e)
        .arg(&a)
        .output()
        .expect("run trace-diff");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// A 3-step trace; `tokens` and `logit0` (step 0's top logit) vary per case.
fn trace(prompt: &str, tokens: &[i32], logit0: f32) -> String {
    let mut s = format!("PROMPT ids={prompt}\n");
    for (i, &t) in tokens.iter().enumerate() {
        let top = if i == 0 { logit0 } else { 3.0 };
        s += &format!("TOKEN step={i} id={t}\nTOPK step={i} entries={t}:{top:.6},7:1.500000,9:1.250000\nTIME step={i} ms=1.{i}\n");
    }
    s
}

#[test]
fn trace_diff_follows_the_spec_rules() {
    if python().is_none() {
        return;
    }
    let base = trace("1,2,3", &[5, 6, 2], 4.0);
    let (rc, out) = diff(&base, &base, &[]);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("3 steps match"), "{out}");

    // TIME differences are ignored.
    let (rc, out) = diff(&base, &base.replace("ms=1.1", "ms=99.0"), &[]);
    assert_eq!(rc, 0, "{out}");

    let (rc, out) = diff(&base, &trace("1,2,3", &[5, 8, 2], 4.0), &[]);
    assert_eq!(rc, 1);
    assert!(
        out.contains("first divergent step 1: TOKEN expected 6, got 8"),
        "{out}"
    );

    let (rc, out) = diff(&base, &trace("1,2,4", &[5, 6, 2], 4.0), &[]);
    assert_eq!(rc, 1);
    assert!(out.contains("PROMPT differs at index 2"), "{out}");

    // atol 1e-5 on TOPK logits: 4e-6 passes, 3e-5 fails.
    assert_eq!(diff(&base, &trace("1,2,3", &[5, 6, 2], 4.000004), &[]).0, 0);
    let (rc, out) = diff(&base, &trace("1,2,3", &[5, 6, 2], 4.00003), &[]);
    assert_eq!(rc, 1);
    assert!(out.contains("step 0: TOPK id 5"), "{out}");
    assert_eq!(
        diff(
            &base,
            &trace("1,2,3", &[5, 6, 2], 4.00003),
            &["--atol", "1e-4"]
        )
        .0,
        0
    );

    // Step counts: shorter fails unless it ends on an EOG token (2 here) given with --eog.
    let short = trace("1,2,3", &[5, 6], 4.0);
    let (rc, out) = diff(&base, &short, &[]);
    assert_eq!(rc, 1);
    assert!(out.contains("step count differs"), "{out}");
    let stopped = trace("1,2,3", &[5, 2], 4.0);
    let longer = trace("1,2,3", &[5, 2, 9], 4.0);
    assert_eq!(diff(&longer, &stopped, &["--eog", "2"]).0, 0);
    assert_eq!(diff(&longer, &stopped, &[]).0, 1);

    let (rc, out) = diff(&base, "TOKEN step=0 id=x\n", &[]);
    assert_eq!(rc, 2, "{out}");
}

/// A golden trace against itself and against another model's trace of the same prompt.
#[test]
fn trace_diff_on_golden_traces() {
    if python().is_none() {
        return;
    }
    let (Some(f32_trace), Some(i2s_trace)) = (
        bitnet_testdata::path("golden/tiny-spm-f32/short_en.trace"),
        bitnet_testdata::path("golden/tiny-spm-i2_s/short_en.trace"),
    ) else {
        return;
    };
    let a = std::fs::read_to_string(f32_trace).unwrap();
    let b = std::fs::read_to_string(i2s_trace).unwrap();
    assert_eq!(diff(&a, &a, &[]).0, 0);
    // golden/README.md: the I2_S model's greedy ids first differ from the F32 one at step 6.
    let (rc, out) = diff(&a, &b, &[]);
    assert_eq!(rc, 1);
    assert!(out.contains("first divergent step 6"), "{out}");
}
