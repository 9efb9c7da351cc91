//! `struct bitnet_sampler { iface, ctx }` and user-defined samplers (llama.h `llama_sampler_i`,
//! `llama_sampler_init`).
//!
//! As in llama.h, every sampler is the public pair `{iface, ctx}` and the C entry points
//! dispatch through `iface`. A sampler written in C fills a `bitnet_sampler_i` with its
//! functions and passes its state as `ctx` to `bitnet_sampler_init`; its functions read
//! `smpl->ctx`. The built-in samplers are the same pair: `iface` points to one static table of
//! Rust functions (shared by all of them) and `ctx` to the boxed Rust [`Sampler`], so built-in
//! and user samplers sit in one chain. A chain (built-in) holds its members as `CSampler`s:
//! a handle it owns and frees through `iface->free` (then the struct itself), exactly once.
//! Members that are built-in samplers are run directly on their Rust state (no copy of the
//! candidates); a user sampler's `apply` gets a `bitnet_token_data_array` over the chain's own
//! candidate buffer (no copy either, `bitnet_token_data` and [`TokenData`] share a layout).
//!
//! The backend_* members of `bitnet_sampler_i` (ggml graph sampling in llama.cpp) are part of
//! the layout only: bitnet has no ggml backend and never calls them. `copy_state` is called by
//! `bitnet_sampler_copy` as in llama.cpp.

use super::sampler::bitnet_token_data_array;
use super::{bitnet_token, call, into_handle, null_arg};
use crate::error::{Error, ErrorKind, Result};
use crate::sampling::{Chain, Sampler, TokenData, TokenDataArray, DEFAULT_SEED};
use std::any::Any;
use std::ffi::{c_char, c_void, CStr};
use std::sync::Mutex;

/// A user sampler's state (llama.h `llama_sampler_context_t`).
pub type bitnet_sampler_context_t = *mut c_void;

/// The tensors of backend sampling (llama.h `llama_sampler_data`; ggml tensors there, opaque
/// here). Part of `bitnet_sampler_i`'s layout only: bitnet never calls the backend_* members.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_sampler_data {
    pub logits: *mut c_void,
    pub probs: *mut c_void,
    pub sampled: *mut c_void,
    pub candidates: *mut c_void,
}

/// The functions of a sampler (llama.h `llama_sampler_i`, field for field). A user sampler
/// fills one (it must outlive every sampler using it) and passes it to bitnet_sampler_init.
/// `apply` is required (a chain skips a member without it); `name`, `accept`, `reset` may be
/// NULL; `clone` and `free` may be NULL if `ctx` is NULL (bitnet_sampler_clone then copies the
/// handle; a sampler with a ctx and no clone cannot be cloned: the clone call fails). `free`
/// releases `smpl->ctx` only: the library frees the struct itself afterwards. `clone` returns
/// a new sampler made with bitnet_sampler_init. The backend_* members (ggml graph sampling in
/// llama.cpp) are never called: bitnet has no ggml backend. `copy_state`, when set, is what
/// bitnet_sampler_copy calls.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_sampler_i {
    pub name: Option<unsafe extern "C" fn(smpl: *const bitnet_sampler) -> *const c_char>,
    pub accept: Option<unsafe extern "C" fn(smpl: *mut bitnet_sampler, token: bitnet_token)>,
    pub apply: Option<
        unsafe extern "C" fn(smpl: *mut bitnet_sampler, cur_p: *mut bitnet_token_data_array),
    >,
    pub reset: Option<unsafe extern "C" fn(smpl: *mut bitnet_sampler)>,
    pub clone: Option<unsafe extern "C" fn(smpl: *const bitnet_sampler) -> *mut bitnet_sampler>,
    pub free: Option<unsafe extern "C" fn(smpl: *mut bitnet_sampler)>,
    pub backend_init: Option<
        unsafe extern "C" fn(
            smpl: *mut bitnet_sampler,
            buft: *mut c_void,
            n_outputs_max_per_seq: u32,
        ) -> bool,
    >,
    pub backend_accept: Option<
        unsafe extern "C" fn(
            smpl: *mut bitnet_sampler,
            ctx: *mut c_void,
            gf: *mut c_void,
            selected_token: *mut c_void,
        ),
    >,
    pub backend_apply: Option<
        unsafe extern "C" fn(
            smpl: *mut bitnet_sampler,
            ctx: *mut c_void,
            gf: *mut c_void,
            data: *mut bitnet_sampler_data,
        ),
    >,
    pub backend_set_input: Option<unsafe extern "C" fn(smpl: *mut bitnet_sampler)>,
    pub backend_reset: Option<unsafe extern "C" fn(smpl: *mut bitnet_sampler)>,
    pub copy_state:
        Option<unsafe extern "C" fn(src: *const bitnet_sampler, dst: *mut bitnet_sampler)>,
}

/// A sampler or a sampler chain (llama.h `llama_sampler`): its functions and its state. Made by
/// the bitnet_sampler_init* functions and bitnet_sampler_chain_init; free with
/// bitnet_sampler_free, except a sampler added to a chain (the chain owns it then). The
/// built-in samplers share one `iface`, which works only with their own `ctx`; do not modify it.
#[repr(C)]
#[derive(Debug)]
pub struct bitnet_sampler {
    pub iface: *mut bitnet_sampler_i,
    pub ctx: bitnet_sampler_context_t,
}

// bitnet_token_data (C) and TokenData (Rust) are one layout: a user's apply works on the
// chain's candidate buffer in place.
const _: () = {
    assert!(
        std::mem::size_of::<super::sampler::bitnet_token_data>()
            == std::mem::size_of::<TokenData>()
    );
    assert!(
        std::mem::align_of::<super::sampler::bitnet_token_data>()
            == std::mem::align_of::<TokenData>()
    );
    assert!(
        std::mem::offset_of!(super::sampler::bitnet_token_data, id)
            == std::mem::offset_of!(TokenData, id)
    );
    assert!(
        std::mem::offset_of!(super::sampler::bitnet_token_data, logit)
            == std::mem::offset_of!(TokenData, logit)
    );
    assert!(
        std::mem::offset_of!(super::sampler::bitnet_token_data, p)
            == std::mem::offset_of!(TokenData, p)
    );
};

/// What a built-in sampler's `ctx` points to.
struct Builtin(Box<dyn Sampler>);

/// The one table of the built-in samplers: each entry is the C entry point of the same name,
/// which runs the Rust sampler behind `ctx`.
static BUILTIN_IFACE: bitnet_sampler_i = bitnet_sampler_i {
    name: Some(builtin_name),
    accept: Some(builtin_accept),
    apply: Some(builtin_apply),
    reset: Some(builtin_reset),
    clone: Some(builtin_clone),
    free: Some(builtin_free),
    ..EMPTY_IFACE
};

extern "C" fn builtin_name(smpl: *const bitnet_sampler) -> *const c_char {
    super::sampler::bitnet_sampler_name(smpl)
}
extern "C" fn builtin_accept(smpl: *mut bitnet_sampler, token: bitnet_token) {
    super::sampler::bitnet_sampler_accept(smpl, token)
}
extern "C" fn builtin_apply(smpl: *mut bitnet_sampler, cur_p: *mut bitnet_token_data_array) {
    super::sampler::bitnet_sampler_apply(smpl, cur_p)
}
extern "C" fn builtin_reset(smpl: *mut bitnet_sampler) {
    super::sampler::bitnet_sampler_reset(smpl)
}
extern "C" fn builtin_clone(smpl: *const bitnet_sampler) -> *mut bitnet_sampler {
    super::sampler::bitnet_sampler_clone(smpl)
}
/// Drops the Rust state (a chain's members with it) and clears `ctx`; the caller frees the
/// struct.
extern "C" fn builtin_free(smpl: *mut bitnet_sampler) {
    super::call_void(|| {
        let s = super::borrow_mut(smpl, "smpl")?;
        if is_builtin(s) && !s.ctx.is_null() {
            // SAFETY: a built-in's ctx is the Box<Builtin> made by builtin_handle, freed once
            // (ctx is cleared right after).
            drop(unsafe { Box::from_raw(s.ctx.cast::<Builtin>()) });
            s.ctx = std::ptr::null_mut();
        }
        Ok(())
    })
}

fn builtin_iface() -> *mut bitnet_sampler_i {
    std::ptr::addr_of!(BUILTIN_IFACE).cast_mut()
}

fn is_builtin(s: &bitnet_sampler) -> bool {
    std::ptr::eq(s.iface.cast_const(), std::ptr::addr_of!(BUILTIN_IFACE))
}

/// A new handle for a built-in (Rust) sampler.
pub(crate) fn builtin_handle(s: Box<dyn Sampler>) -> *mut bitnet_sampler {
    let ctx = Box::into_raw(Box::new(Builtin(s))).cast::<c_void>();
    into_handle(bitnet_sampler {
        iface: builtin_iface(),
        ctx,
    })
}

/// Frees a sampler as bitnet_sampler_free does: `iface->free` (if any), then the struct.
pub(crate) fn free_sampler(p: *mut bitnet_sampler) {
    if p.is_null() {
        return;
    }
    // SAFETY: non-null handles are made by into_handle (bitnet_sampler_init or a built-in
    // constructor) and freed once: the header's contract.
    unsafe {
        if let Some(free) = (*p).iface.as_ref().and_then(|i| i.free) {
            free(p);
        }
        drop(Box::from_raw(p));
    }
}

/// A sampler handle seen as a Rust [`Sampler`]: how chains hold their members (owning: freed
/// with the chain) and how the C entry points run a handle (a borrowed view).
pub(crate) struct CSampler {
    ptr: *mut bitnet_sampler,
    owned: bool,
}

// SAFETY: a sampler may move between threads but is used by one thread at a time (the header's
// thread-safety rules, llama.h's too); a user sampler's functions must allow that.
unsafe impl Send for CSampler {}

impl Drop for CSampler {
    fn drop(&mut self) {
        if self.owned {
            free_sampler(self.ptr);
        }
    }
}

impl CSampler {
    /// Owns `ptr` (non-null): freed when this is dropped.
    pub(crate) fn owning(ptr: *mut bitnet_sampler) -> Self {
        CSampler { ptr, owned: true }
    }

    /// Borrows `ptr` (non-null): never freed here.
    pub(crate) fn view(ptr: *mut bitnet_sampler) -> Self {
        CSampler { ptr, owned: false }
    }

    pub(crate) fn handle(&self) -> *mut bitnet_sampler {
        self.ptr
    }

    /// Gives up ownership and returns the handle.
    pub(crate) fn disown(mut self) -> *mut bitnet_sampler {
        self.owned = false;
        self.ptr
    }

    fn raw(&self) -> &bitnet_sampler {
        // SAFETY: ptr is a live, non-null handle (constructors' contract).
        unsafe { &*self.ptr }
    }

    pub(crate) fn is_builtin(&self) -> bool {
        is_builtin(self.raw())
    }

    /// The Rust sampler of a built-in; None for a user sampler (or a built-in already freed).
    pub(crate) fn rust(&self) -> Option<&dyn Sampler> {
        let s = self.raw();
        if !is_builtin(s) || s.ctx.is_null() {
            return None;
        }
        // SAFETY: a built-in's ctx is its live Box<Builtin>.
        Some(unsafe { &*s.ctx.cast::<Builtin>() }.0.as_ref())
    }

    /// Mutable form of [`CSampler::rust`].
    pub(crate) fn rust_mut(&mut self) -> Option<&mut Box<dyn Sampler>> {
        let s = self.raw();
        if !is_builtin(s) || s.ctx.is_null() {
            return None;
        }
        // SAFETY: as rust(); &mut self stands for the one user of the handle.
        Some(&mut unsafe { &mut *s.ctx.cast::<Builtin>() }.0)
    }

    /// The user sampler's functions (None for a built-in or a NULL iface).
    pub(crate) fn user_iface(&self) -> Option<bitnet_sampler_i> {
        let s = self.raw();
        if is_builtin(s) {
            return None;
        }
        // SAFETY: a non-null iface points to the user's table, which outlives its samplers.
        unsafe { s.iface.as_ref() }.copied()
    }

    /// A new handle with the same state: the Rust clone for a built-in; the iface's clone for a
    /// user sampler, or a copy of the handle when it has neither clone nor ctx (llama.h).
    pub(crate) fn try_clone_handle(&self) -> Result<*mut bitnet_sampler> {
        if self.is_builtin() {
            let r = self.rust().ok_or_else(freed_builtin)?;
            return Ok(builtin_handle(r.try_clone_box()?));
        }
        let iface = self.user_iface().unwrap_or(EMPTY_IFACE);
        if let Some(clone) = iface.clone {
            // SAFETY: the user's function, called with its own live sampler.
            let p = unsafe { clone(self.ptr) };
            if p.is_null() {
                return Err(Error::invalid_argument(format!(
                    "sampler {:?}: its clone function returned NULL",
                    self.name()
                )));
            }
            return Ok(p);
        }
        if self.raw().ctx.is_null() {
            return Ok(into_handle(bitnet_sampler {
                iface: self.raw().iface,
                ctx: std::ptr::null_mut(),
            }));
        }
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "sampler {:?} cannot be cloned: it has a ctx and no clone function",
                self.name()
            ),
        ))
    }

    /// `iface->name` of a user sampler, as C returns it ("(null)" without one).
    pub(crate) fn user_name_ptr(&self) -> *const c_char {
        match self.user_iface().and_then(|i| i.name) {
            Some(name) => {
                // SAFETY: the user's function, called with its own live sampler.
                let p = unsafe { name(self.ptr) };
                if p.is_null() {
                    NULL_NAME.as_ptr()
                } else {
                    p
                }
            }
            None => NULL_NAME.as_ptr(),
        }
    }
}

const NULL_NAME: &CStr = c"(null)";
const EMPTY_IFACE: bitnet_sampler_i = bitnet_sampler_i {
    name: None,
    accept: None,
    apply: None,
    reset: None,
    clone: None,
    free: None,
    backend_init: None,
    backend_accept: None,
    backend_apply: None,
    backend_set_input: None,
    backend_reset: None,
    copy_state: None,
};

fn freed_builtin() -> Error {
    Error::invalid_argument("built-in sampler has no state (ctx is NULL: was it freed?)")
}

/// A user sampler's name as a `&'static str` for the Rust side (chain messages): interned,
/// at most 1024 distinct names, later ones reported as "(custom)".
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    if names.len() >= 1024 {
        return "(custom)";
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.push(leaked);
    leaked
}

impl Sampler for CSampler {
    fn name(&self) -> &'static str {
        if let Some(r) = self.rust() {
            return r.name();
        }
        // SAFETY: a NUL-terminated string from the user's name function (or ours).
        let s = unsafe { CStr::from_ptr(self.user_name_ptr()) };
        intern(&s.to_string_lossy())
    }

    fn apply(&mut self, cur: &mut TokenDataArray) {
        if self.is_builtin() {
            if let Some(r) = self.rust_mut() {
                r.apply(cur);
            }
            return;
        }
        let Some(apply) = self.user_iface().and_then(|i| i.apply) else {
            return; // as llama.cpp's chain: a member without apply is skipped
        };
        let len = cur.data.len();
        let data = cur
            .data
            .as_mut_ptr()
            .cast::<super::sampler::bitnet_token_data>();
        let mut arr = bitnet_token_data_array {
            data,
            size: len,
            selected: cur.selected,
            sorted: cur.sorted,
        };
        // SAFETY: the user's function on its own sampler and a view of the candidate buffer
        // (same layout, see the assertions above), valid for `len` entries.
        unsafe { apply(self.ptr, &mut arr) };
        if std::ptr::eq(arr.data, data) {
            cur.data.truncate(arr.size.min(len));
        } else if arr.data.is_null() || arr.size == 0 {
            cur.data.clear();
        } else {
            // llama.h lets a sampler point `data` elsewhere: take its `size` entries from there.
            // SAFETY: the sampler's contract: `data` holds `size` entries after apply.
            let src = unsafe { std::slice::from_raw_parts(arr.data.cast::<TokenData>(), arr.size) };
            cur.data.clear();
            cur.data.extend_from_slice(src);
        }
        cur.selected = arr.selected;
        cur.sorted = arr.sorted;
    }

    fn accept(&mut self, token: i32) {
        if self.is_builtin() {
            if let Some(r) = self.rust_mut() {
                r.accept(token);
            }
        } else if let Some(accept) = self.user_iface().and_then(|i| i.accept) {
            // SAFETY: the user's function, called with its own live sampler.
            unsafe { accept(self.ptr, token) }
        }
    }

    fn reset(&mut self) {
        if self.is_builtin() {
            if let Some(r) = self.rust_mut() {
                r.reset();
            }
        } else if let Some(reset) = self.user_iface().and_then(|i| i.reset) {
            // SAFETY: the user's function, called with its own live sampler.
            unsafe { reset(self.ptr) }
        }
    }

    /// Panics if the sampler cannot be cloned; the C API uses [`Sampler::try_clone_box`].
    fn clone_box(&self) -> Box<dyn Sampler> {
        match self.try_clone_box() {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        }
    }

    fn try_clone_box(&self) -> Result<Box<dyn Sampler>> {
        Ok(Box::new(CSampler::owning(self.try_clone_handle()?)))
    }

    /// A built-in's seed; llama.cpp reports the default seed for user samplers.
    fn seed(&self) -> u32 {
        self.rust().map_or(DEFAULT_SEED, |r| r.seed())
    }

    fn as_chain(&self) -> Option<&Chain> {
        self.rust()?.as_chain()
    }

    fn as_chain_mut(&mut self) -> Option<&mut Chain> {
        self.rust_mut()?.as_chain_mut()
    }
}

/// The handle of a chain member added from C (None for a member built in Rust).
pub(crate) fn member_handle(s: &dyn Sampler) -> Option<*mut bitnet_sampler> {
    let any: &dyn Any = s;
    any.downcast_ref::<CSampler>().map(CSampler::handle)
}

/// A sampler written in C (llama.h `llama_sampler_init`): `iface` holds its functions (it must
/// outlive the sampler and its clones), `ctx` its state, which the functions reach as
/// `smpl->ctx`. bitnet_sampler_free calls `iface->free` (which releases ctx), then frees the
/// struct. It can be used alone or added to a chain beside built-in samplers. NULL (ctx then
/// stays the caller's) if iface is NULL or a built-in sampler's.
#[no_mangle]
pub extern "C" fn bitnet_sampler_init(
    iface: *mut bitnet_sampler_i,
    ctx: bitnet_sampler_context_t,
) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || {
        if iface.is_null() {
            return Err(null_arg("iface"));
        }
        if std::ptr::eq(iface.cast_const(), std::ptr::addr_of!(BUILTIN_IFACE)) {
            return Err(Error::invalid_argument(
                "iface is the built-in samplers' table, which works only with their own ctx",
            ));
        }
        Ok(into_handle(bitnet_sampler { iface, ctx }))
    })
}
