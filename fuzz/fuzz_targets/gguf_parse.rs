//! Arbitrary bytes as a GGUF file: parsing, metadata getters, tensor views and dequantizing
//! every tensor must give an error or a value, never a panic or an out-of-bounds read.
#![no_main]

use bitnet::gguf::GgufFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(g) = GgufFile::from_bytes(data) else {
        return;
    };
    for (k, _) in g.metadata() {
        let _ = g.get_u32(k);
        let _ = g.get_f32(k);
        let _ = g.get_str(k);
        let _ = g.get_str_array(k);
    }
    for t in g.tensors() {
        let v = g.view(t);
        // Bound the work per input: dequantize small tensors only.
        if v.n_elements() <= 1 << 16 {
            let _ = bitnet::tensor::dequantize_tensor(v.ty, v.data, v.ne0(), v.n_elements());
        }
    }
});
