//! Debugging aid, not a check: prints the forward pass's named intermediates for one position,
//! in the numpy oracle's `dump` names, so a difference can be located stage by stage:
//!
//! ```text
//! BITNET_DUMP="tiny-spm-f32;1,450,4996;3" BITNET_TEST_DATA=/work/shared \
//!   cargo test --release --test oracle_dump -- --ignored --nocapture
//! python3 oracle.py dump ../../models/tiny-spm-f32.gguf --ids 1,450,4996 --prompt-len 3
//! ```
//! (`model;ids;prompt_len`: the first prompt_len ids go in one batch, later ids one at a time;
//! the last id's row is printed.)

mod common;

use bitnet::Batch;

#[test]
#[ignore = "debugging aid; set BITNET_DUMP"]
fn dump_stages() {
    let Ok(spec) = std::env::var("BITNET_DUMP") else {
        eprintln!("set BITNET_DUMP=\"model;ids;prompt_len\"");
        return;
    };
    let parts: Vec<&str> = spec.split(';').collect();
    let ids: Vec<i32> = parts[1].split(',').map(|t| t.parse().unwrap()).collect();
    let plen: usize = parts.get(2).map_or(ids.len(), |p| p.parse().unwrap());
    let Some(model) = common::load(parts[0]) else {
        return;
    };
    let mut ctx = common::context(&model);
    let mut batches: Vec<&[i32]> = vec![&ids[..plen]];
    batches.extend(ids[plen..].chunks(1));
    let last = batches.len() - 1;
    for (i, b) in batches.iter().enumerate() {
        let batch = Batch::get_one(b);
        if i < last {
            ctx.decode(&batch).unwrap();
            continue;
        }
        let mut tap = |name: &str, v: &[f32], width: usize| {
            let row = &v[v.len() - width..];
            let sum: f64 = row.iter().map(|&x| x as f64).sum();
            println!(
                "{name} shape=[{width}] first4={:?} sum={sum:.9} fnv={:016x}",
                &row[..4],
                common::fnv1a64(row)
            );
        };
        ctx.decode_traced(&batch, &mut tap).unwrap();
    }
}
