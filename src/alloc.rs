//! Fallible allocation of the buffers a context sizes from its parameters. A size that
//! overflows or a request the allocator refuses is an `OutOfMemory` error naming the parameter,
//! its value, the buffer and the bytes it would need, never an abort: `bitnet_init_from_model`
//! returns NULL with that message.

use crate::error::{Error, ErrorKind, Result};

/// Why a buffer has the size it has: the context parameter that drives it and its value.
#[derive(Clone, Copy)]
pub(crate) struct SizedBy<'a> {
    pub param: &'a str,
    pub value: usize,
}

impl SizedBy<'_> {
    /// The error for `what` of `n` elements of `T` (`None`: the count itself overflowed).
    pub(crate) fn error<T>(self, what: &str, n: Option<usize>) -> Error {
        let bytes = n.and_then(|n| n.checked_mul(size_of::<T>()));
        Error::new(
            ErrorKind::OutOfMemory,
            format!(
                "{} = {}: {what} would need {} bytes, which cannot be allocated",
                self.param,
                self.value,
                match bytes {
                    Some(b) => b.to_string(),
                    None => "more than 2^64".to_string(),
                }
            ),
        )
    }

    /// A vector of `n` copies of `fill` (`n` = None when its computation overflowed).
    pub(crate) fn vec<T: Clone>(self, what: &str, n: Option<usize>, fill: T) -> Result<Vec<T>> {
        let Some(count) = n.filter(|&c| c.checked_mul(size_of::<T>()).is_some()) else {
            return Err(self.error::<T>(what, n));
        };
        let mut v = Vec::new();
        v.try_reserve_exact(count)
            .map_err(|_| self.error::<T>(what, n))?;
        v.resize(count, fill);
        Ok(v)
    }

    /// An empty vector with room for `n` elements.
    pub(crate) fn with_capacity<T>(self, what: &str, n: usize) -> Result<Vec<T>> {
        let mut v = Vec::new();
        v.try_reserve_exact(n)
            .map_err(|_| self.error::<T>(what, Some(n)))?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_sizes_are_errors_naming_the_parameter() {
        let by = SizedBy {
            param: "n_ubatch",
            value: 7,
        };
        let v = by.vec("x", Some(3), 1.5f32).unwrap();
        assert_eq!(v, [1.5; 3]);
        let e = by.vec("the mask", None, 0u8).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfMemory);
        assert!(e
            .message()
            .starts_with("n_ubatch = 7: the mask would need more than 2^64"));
        let e = by.vec("the mask", Some(usize::MAX / 2), 0f32).unwrap_err();
        assert!(e.message().contains("more than 2^64"), "{}", e.message());
        let e = by
            .vec("the mask", Some(isize::MAX as usize / 4), 0f32)
            .unwrap_err();
        assert!(e
            .message()
            .contains(&format!("{} bytes", isize::MAX as usize / 4 * 4)));
    }
}
