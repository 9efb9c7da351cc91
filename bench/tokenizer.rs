//! Tokenizer speed.
//!
//! Part 1 (default): ms and MB/s to tokenize ~100 kB of mixed text (the reference's extra test
//! strings: prose, code, numbers, many scripts, emoji, control characters) with each vocab.
//!
//! Part 2 (`--scaling`): seconds for one call on 1 / 4 / 16 / 64 MB of four shapes of text per
//! vocab: `prose` (English-like words, spaces, punctuation, line breaks), `nospace` (the same
//! prose with every space and line break removed: one unbroken word), `allspace` (only ' ')
//! and `cjk` (CJK ideographs, no spaces). The time per MB should stay flat as the size grows:
//! the tokenizers are linear in the input length. Texts are made from a fixed seed.
//!
//! ```text
//! BITNET_TEST_DATA=/work/shared cargo bench --bench tokenizer [-- llama-bpe llama-spm]
//! BITNET_TEST_DATA=/work/shared cargo bench --bench tokenizer -- --scaling [--sizes 1,4,16,64]
//!     [--shapes prose,nospace,allspace,cjk] [llama-bpe ...]
//! ```
//!
//! Part 3, for comparing with another tokenizer on the same bytes: `--write-texts DIR` writes
//! the scaling texts as `DIR/<shape>-<MB>MB.txt` (with `--sizes` / `--shapes`); `--file PATH
//! VOCAB [--reps 3] [--cap S]` tokenizes one file with one vocab in a process of its own and prints
//! the fastest of `--reps` calls (stopping early once a call takes more than `--cap` seconds),
//! the token count and the process's resident memory before the first call and at its peak
//! (`VmRSS` / `VmHWM`), so the peak includes the vocab and the text itself.

use bitnet::gguf::GgufFile;
use bitnet::Vocab;
use std::time::Instant;

const TARGET_BYTES: usize = 100_000;
const VOCABS: [&str; 4] = ["llama-bpe", "llama-spm", "gpt-2", "falcon"];
const SHAPES: [&str; 4] = ["prose", "nospace", "allspace", "cjk"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut only = Vec::new();
    let mut scaling = false;
    let mut sizes = vec![1usize, 4, 16, 64];
    let mut shapes: Vec<String> = SHAPES.iter().map(|s| s.to_string()).collect();
    let mut write_dir = None;
    let mut file = None;
    let mut reps = 3usize;
    let mut cap = f64::INFINITY;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--scaling" => scaling = true,
            "--write-texts" => write_dir = Some(it.next().expect("--write-texts DIR").clone()),
            "--file" => file = Some(it.next().expect("--file PATH").clone()),
            "--reps" => reps = it.next().expect("--reps N").parse().expect("--reps N"),
            "--cap" => cap = it.next().expect("--cap S").parse().expect("--cap seconds"),
            "--sizes" => {
                sizes = it
                    .next()
                    .expect("--sizes 1,4,16")
                    .split(',')
                    .map(|s| s.parse().expect("size in MB"))
                    .collect()
            }
            "--shapes" => {
                shapes = it
                    .next()
                    .expect("--shapes prose,cjk")
                    .split(',')
                    .map(str::to_string)
                    .collect()
            }
            // cargo bench passes --bench.
            s if s.starts_with('-') => {}
            s => only.push(s.to_string()),
        }
    }
    if let Some(dir) = write_dir {
        std::fs::create_dir_all(&dir).expect("create the text directory");
        for shape in &shapes {
            for &mb in &sizes {
                let path = format!("{dir}/{shape}-{mb}MB.txt");
                std::fs::write(&path, make_text(shape, mb << 20)).expect("write a text");
                println!("{path}");
            }
        }
        return;
    }
    if let Some(path) = file {
        let [name] = only.as_slice() else {
            panic!("--file PATH needs exactly one vocab name ({VOCABS:?})");
        };
        one_file(name, &path, reps.max(1), cap);
        return;
    }
    let vocabs: Vec<(&str, Vocab)> = VOCABS
        .iter()
        .filter(|n| only.is_empty() || only.iter().any(|o| o == *n))
        .filter_map(|&name| {
            let p = bitnet_testdata::path(&format!("vocab/ggml-vocab-{name}.gguf"))?;
            let f = GgufFile::open(&p).expect("open vocab");
            Some((name, Vocab::from_gguf(&f).expect("load vocab")))
        })
        .collect();
    if vocabs.is_empty() {
        return;
    }
    if scaling {
        scaling_table(&vocabs, &sizes, &shapes);
    } else {
        mixed(&vocabs);
    }
}

fn mixed(vocabs: &[(&str, Vocab)]) {
    let Some(inp) = bitnet_testdata::path("vocab/extra/ggml-vocab-llama-bpe.inp") else {
        return;
    };
    let raw = std::fs::read(inp).expect("read test strings");
    let sep: &[u8] = b"\n__ggml_vocab_test__\n";
    let mut one = Vec::new();
    let mut rest = &raw[..];
    while let Some(p) = rest.windows(sep.len()).position(|w| w == sep) {
        one.extend_from_slice(&rest[..p]);
        one.push(b'\n');
        rest = &rest[p + sep.len()..];
    }
    let mut text = Vec::with_capacity(TARGET_BYTES + one.len());
    while text.len() < TARGET_BYTES {
        text.extend_from_slice(&one);
    }
    text.truncate(TARGET_BYTES);
    // Keep whole characters at the end.
    let text = String::from_utf8_lossy(&text).into_owned();

    println!(
        "tokenizer bench: {} bytes of mixed text, one thread",
        text.len()
    );
    for (name, vocab) in vocabs {
        for (label, special) in [("plain", false), ("special", true)] {
            let mut best = f64::INFINITY;
            let mut n_tokens = 0;
            for _ in 0..5 {
                let t = Instant::now();
                let ids = vocab.tokenize(&text, special, special).expect("tokenize");
                best = best.min(t.elapsed().as_secs_f64());
                n_tokens = ids.len();
            }
            println!(
                "{name:10} {label:7} tokenize: {:7.2} ms  {:6.2} MB/s  ({n_tokens} tokens; best of 5)",
                best * 1e3,
                text.len() as f64 / best / 1e6
            );
        }
        let ids = vocab.tokenize(&text, false, false).expect("tokenize");
        let mut dt = f64::INFINITY;
        let mut back = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            back = vocab.detokenize(&ids, false, false).expect("detokenize");
            dt = dt.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{name:10} detokenize:       {:7.2} ms  {:6.2} MB/s",
            dt * 1e3,
            back.len() as f64 / dt / 1e6
        );
    }
}

/// `kB` of a `/proc/self/status` line (`VmRSS`, `VmHWM`), 0 where there is no such file.
fn status_kb(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time of the calling thread: with `Instant`, tells time spent waiting for a core on a
/// loaded machine from time spent working.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn one_file(name: &str, path: &str, reps: usize, cap: f64) {
    let Some(p) = bitnet_testdata::path(&format!("vocab/ggml-vocab-{name}.gguf")) else {
        eprintln!("no shared data: set BITNET_TEST_DATA");
        return;
    };
    let vocab = Vocab::from_gguf(&GgufFile::open(&p).expect("open vocab")).expect("load vocab");
    let text = std::fs::read(path).expect("read the text");
    let base = status_kb("VmRSS");
    let (mut best, mut best_cpu, mut n, mut done, mut fnv) = (f64::INFINITY, 0.0, 0, 0, 0);
    for _ in 0..reps {
        let c = thread_cpu_seconds();
        let t = Instant::now();
        let ids = vocab.tokenize(&text, false, false).expect("tokenize");
        let s = t.elapsed().as_secs_f64();
        let cpu = thread_cpu_seconds() - c;
        n = ids.len();
        // FNV-1a over the ids as u32, to compare the tokens with another tokenizer's.
        fnv = ids.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &id| {
            (h ^ id as u32 as u64).wrapping_mul(0x100_0000_01b3)
        });
        if s < best {
            (best, best_cpu) = (s, cpu);
        }
        done += 1;
        if s > cap {
            break;
        }
    }
    println!(
        "seconds {best:.3} cpu {best_cpu:.3} tokens {n} reps {done} base_rss_kb {base} peak_rss_kb {} bytes {} fnv {fnv:016x}",
        status_kb("VmHWM"),
        text.len()
    );
}

fn scaling_table(vocabs: &[(&str, Vocab)], sizes: &[usize], shapes: &[String]) {
    println!("tokenizer scaling: seconds for one call (s/MB), one thread");
    print!("{:10} {:9}", "vocab", "shape");
    for mb in sizes {
        print!(" {:>18}", format!("{mb} MB"));
    }
    println!();
    for shape in shapes {
        let texts: Vec<Vec<u8>> = sizes.iter().map(|&mb| make_text(shape, mb << 20)).collect();
        for (name, vocab) in vocabs {
            print!("{name:10} {shape:9}");
            for text in &texts {
                let t = Instant::now();
                let n = vocab.tokenize(text, false, false).expect("tokenize").len();
                let s = t.elapsed().as_secs_f64();
                let mb = text.len() as f64 / (1 << 20) as f64;
                print!(" {:>18}", format!("{s:.2} ({:.2})", s / mb));
                std::hint::black_box(n);
            }
            println!();
        }
    }
}

/// A deterministic text of `shape` and exactly `bytes` bytes (whole characters).
fn make_text(shape: &str, bytes: usize) -> Vec<u8> {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        // xorshift64*
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32
    };
    const WORDS: [&str; 32] = [
        "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be",
        "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have",
        "an", "had", "they", "you", "were",
    ];
    let mut out = Vec::with_capacity(bytes + 16);
    match shape {
        "allspace" => out.resize(bytes, b' '),
        "cjk" => {
            while out.len() + 3 <= bytes {
                let cp = (0x4E00 + next() % (0x9FA5 - 0x4E00)) as u32;
                let mut b = [0u8; 4];
                out.extend_from_slice(char::from_u32(cp).unwrap().encode_utf8(&mut b).as_bytes());
            }
            out.resize(bytes, b'x');
        }
        "prose" | "nospace" => {
            let spaces = shape == "prose";
            let mut sentence = 0;
            while out.len() < bytes {
                let w = WORDS[(next() % 32) as usize];
                if sentence == 0 {
                    out.push(w.as_bytes()[0].to_ascii_uppercase());
                    out.extend_from_slice(&w.as_bytes()[1..]);
                } else {
                    out.extend_from_slice(w.as_bytes());
                }
                sentence += 1;
                if sentence > 6 && next() % 5 == 0 {
                    out.push(b'.');
                    sentence = 0;
                    if spaces && next() % 4 == 0 {
                        out.push(b'\n');
                        continue;
                    }
                } else if next() % 11 == 0 {
                    out.push(b',');
                }
                if spaces {
                    out.push(b' ');
                }
            }
            out.truncate(bytes);
        }
        _ => panic!("unknown shape {shape} (prose, nospace, allspace, cjk)"),
    }
    out
}
