//! Backend and system queries: init/free, the clock, capabilities, system info.

use super::{call, call_void};
use std::ffi::{c_char, CString};
use std::sync::OnceLock;

/// Global initialisation. Optional: every other call works without it. Selects the kernel set
/// for this CPU now rather than on first use.
#[no_mangle]
pub extern "C" fn bitnet_backend_init() {
    call_void(|| {
        let _ = system_info();
        Ok(())
    })
}

/// Global teardown. bitnet keeps no global resources beyond static tables, so this does
/// nothing; it exists so llama.h-style programs port unchanged.
#[no_mangle]
pub extern "C" fn bitnet_backend_free() {
    call_void(|| Ok(()))
}

/// Monotonic time in microseconds (CLOCK_MONOTONIC, as ggml_time_us).
#[no_mangle]
pub extern "C" fn bitnet_time_us() -> i64 {
    call(0, || Ok(crate::context::perf::now_us()))
}

/// True: model files are memory-mapped (weights are never copied).
#[no_mangle]
pub extern "C" fn bitnet_supports_mmap() -> bool {
    call(true, || Ok(true))
}

/// False: `use_mlock` is not implemented (the map stays pageable).
#[no_mangle]
pub extern "C" fn bitnet_supports_mlock() -> bool {
    call(false, || Ok(false))
}

/// A static, NUL-terminated description of the CPU features bitnet detected and the kernel
/// set it uses, e.g. "CPU : AVX2 = 1 | FMA = 1 | F16C = 1 | AVX512F = 0 | kernels = avx2 |".
/// Never freed.
#[no_mangle]
pub extern "C" fn bitnet_print_system_info() -> *const c_char {
    call(std::ptr::null(), || Ok(system_info().as_ptr()))
}

fn system_info() -> &'static CString {
    static INFO: OnceLock<CString> = OnceLock::new();
    INFO.get_or_init(|| {
        let mut s = String::from("CPU :");
        for (name, on) in cpu_features() {
            s.push_str(&format!(" {name} = {} |", on as u8));
        }
        s.push_str(&format!(
            " kernels = {} |",
            crate::kernels::active_description()
        ));
        CString::new(s).unwrap_or_default()
    })
}

fn cpu_features() -> Vec<(&'static str, bool)> {
    #[cfg(target_arch = "x86_64")]
    {
        vec![
            ("SSE3", std::is_x86_feature_detected!("sse3")),
            ("SSSE3", std::is_x86_feature_detected!("ssse3")),
            ("AVX", std::is_x86_feature_detected!("avx")),
            ("AVX2", std::is_x86_feature_detected!("avx2")),
            ("FMA", std::is_x86_feature_detected!("fma")),
            ("F16C", std::is_x86_feature_detected!("f16c")),
            ("AVX512F", std::is_x86_feature_detected!("avx512f")),
        ]
    }
    #[cfg(target_arch = "aarch64")]
    {
        vec![("NEON", std::arch::is_aarch64_feature_detected!("neon"))]
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn system_info_names_kernels_and_clock_is_monotonic() {
        let info = unsafe { CStr::from_ptr(bitnet_print_system_info()) }
            .to_str()
            .unwrap();
        assert!(
            info.starts_with("CPU :") && info.contains("kernels = "),
            "{info}"
        );
        let a = bitnet_time_us();
        let b = bitnet_time_us();
        assert!(a > 0 && b >= a);
    }
}
