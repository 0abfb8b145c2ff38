//! Secret values: held in memory that is locked (never swapped), excluded from core dumps,
//! zeroed when dropped, compared in constant time, and never printed.
//!
//! Invariant: a secret's bytes leave this type only through [`Secret::expose`], and every
//! caller of `expose` uses them for exactly one purpose (an HTTP header, an encryption) without
//! copying them into a longer-lived owned value. `Debug` and `Display` print `[redacted]`.
//!
//! Example:
//! ```
//! use bureau::secret::Secret;
//! let token = Secret::from_string("syt_abc".to_owned());
//! assert_eq!(format!("{token:?}"), "[redacted]");
//! assert!(token.constant_time_eq(b"syt_abc"));
//! ```

use std::fmt;
use std::sync::atomic::{Ordering, compiler_fence};

/// A secret byte string (credential, token, key). Not `Clone` by accident: use
/// [`Secret::duplicate`] where a second copy is really needed.
pub struct Secret {
    bytes: Box<[u8]>,
    locked: bool,
}

impl Secret {
    /// Takes ownership of `bytes`. The vector's spare capacity is zeroed too.
    pub fn new(mut bytes: Vec<u8>) -> Self {
        let boxed: Box<[u8]> = bytes.as_slice().into();
        zeroize(bytes.as_mut_slice());
        // The old allocation may be larger than its length; clear what it held.
        bytes.clear();
        let mut secret = Self {
            bytes: boxed,
            locked: false,
        };
        secret.protect();
        secret
    }

    /// Takes ownership of a string's bytes (the string's buffer is zeroed).
    pub fn from_string(value: String) -> Self {
        Self::new(value.into_bytes())
    }

    /// The secret bytes, for immediate use.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// The secret as UTF-8, when it is text.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// A second, independently protected copy.
    pub fn duplicate(&self) -> Self {
        Self::new(self.bytes.to_vec())
    }

    /// Compares with `other` in time that depends only on the lengths.
    pub fn constant_time_eq(&self, other: &[u8]) -> bool {
        if self.bytes.len() != other.len() {
            return false;
        }
        let difference = self
            .bytes
            .iter()
            .zip(other)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }

    /// Locks the pages (best effort: `RLIMIT_MEMLOCK` may be small) and excludes them from core
    /// dumps.
    fn protect(&mut self) {
        if self.bytes.is_empty() {
            return;
        }
        let pointer = self.bytes.as_mut_ptr().cast::<std::ffi::c_void>();
        let length = self.bytes.len();
        // SAFETY: the range is exactly this allocation, which outlives the lock (unlocked in
        // Drop before it is freed).
        self.locked = unsafe { rustix::mm::mlock(pointer, length) }.is_ok();
        // MADV_DONTDUMP needs page alignment; advise the pages wholly inside the allocation.
        let page = rustix::param::page_size();
        let start = (pointer as usize).div_ceil(page) * page;
        let end = (pointer as usize + length) / page * page;
        if end > start {
            // SAFETY: [start, end) lies within this allocation; the advice changes no contents.
            let _ = unsafe {
                rustix::mm::madvise(
                    start as *mut std::ffi::c_void,
                    end - start,
                    rustix::mm::Advice::LinuxDontDump,
                )
            };
        }
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize(&mut self.bytes);
        if self.locked {
            let pointer = self.bytes.as_mut_ptr().cast::<std::ffi::c_void>();
            // SAFETY: unlocks the range locked in `protect`; the allocation is still live.
            let _ = unsafe { rustix::mm::munlock(pointer, self.bytes.len()) };
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.constant_time_eq(&other.bytes)
    }
}

impl Eq for Secret {}

/// Overwrites `bytes` with zeros in a way the optimiser cannot remove.
pub fn zeroize(bytes: &mut [u8]) {
    for byte in bytes.iter_mut() {
        // SAFETY: `byte` is a valid, aligned, exclusive reference.
        unsafe { std::ptr::write_volatile(byte, 0) };
    }
    compiler_fence(Ordering::SeqCst);
}

/// Zeroes a string that held a secret and leaves it empty.
pub fn zeroize_string(text: &mut String) {
    let mut bytes = std::mem::take(text).into_bytes();
    zeroize(&mut bytes);
}

/// Marks the process non-dumpable: no core dumps, and other processes of the same user cannot
/// ptrace it or read its `/proc/<pid>/mem` and `environ`. Every process holding secrets calls it.
pub fn make_process_undumpable() -> Result<(), rustix::io::Errno> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let secret = Secret::from_string("canary-7f3a".to_owned());
        assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
    }

    #[test]
    fn compares_by_value() {
        let secret = Secret::new(b"abc".to_vec());
        assert!(secret.constant_time_eq(b"abc"));
        assert!(!secret.constant_time_eq(b"abd"));
        assert!(!secret.constant_time_eq(b"ab"));
        assert_eq!(secret, secret.duplicate());
        assert_eq!(secret.expose_str(), Some("abc"));
    }

    #[test]
    fn zeroize_clears_every_byte() {
        let mut bytes = *b"secret";
        zeroize(&mut bytes);
        assert_eq!(bytes, [0; 6]);
    }
}
