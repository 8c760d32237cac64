//! Reuse of the aligned buffers that direct I/O takes beyond glommio's
//! registered memory.
//!
//! glommio hands out a [`glommio::io::DmaBuffer`] from the executor's
//! registered memory while there is room, and otherwise from the global
//! allocator (block-aligned). Those fallback buffers are large (a WAL chunk
//! is 4 MiB), so malloc maps each one fresh and unmaps it when the write
//! completes: every chunk then pays for the mapping, a page fault per page
//! and the kernel's clearing of each page, on the shard's only core. The
//! buffers cannot be kept and handed back by the WAL itself, because a
//! `DmaBuffer` is trimmed to the length written and cannot grow again.
//!
//! [`PooledDmaAlloc`] wraps the global allocator and keeps freed
//! block-aligned allocations of [`MIN_POOLED`]..=[`MAX_POOLED`] bytes on a
//! per-thread free list of at most [`POOL_BYTES`] (and [`POOL_SLOTS`]
//! blocks): the next buffer of the same size reuses one without a system
//! call or a fault. The pool is bounded, so memory beyond it still goes
//! back to the system; blocks pooled by a thread that exits are not
//! returned (executors live as long as the process).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::RefCell;

use crate::format::BLOCK;

/// Smallest allocation pooled: smaller ones are malloc's business.
pub const MIN_POOLED: usize = 64 << 10;
/// Largest allocation pooled.
pub const MAX_POOLED: usize = 16 << 20;
/// Bytes one thread keeps pooled at most.
pub const POOL_BYTES: usize = 64 << 20;
/// Blocks one thread keeps pooled at most.
pub const POOL_SLOTS: usize = 32;

#[derive(Clone, Copy)]
struct Slot {
    ptr: *mut u8,
    size: usize,
}

const EMPTY: Slot = Slot {
    ptr: std::ptr::null_mut(),
    size: 0,
};

struct Free {
    slots: [Slot; POOL_SLOTS],
    len: usize,
    bytes: usize,
}

thread_local! {
    // Const-initialised and without a destructor: using it never allocates.
    static FREE: RefCell<Free> = const {
        RefCell::new(Free { slots: [EMPTY; POOL_SLOTS], len: 0, bytes: 0 })
    };
}

fn pooled(layout: &Layout) -> bool {
    layout.align() == BLOCK as usize && (MIN_POOLED..=MAX_POOLED).contains(&layout.size())
}

/// A global allocator that pools large block-aligned buffers per thread
/// (see the module documentation) and passes everything else to `A`.
pub struct PooledDmaAlloc<A> {
    inner: A,
}

impl<A> PooledDmaAlloc<A> {
    /// Wraps `inner`.
    pub const fn new(inner: A) -> Self {
        PooledDmaAlloc { inner }
    }
}

/// A pooled block of exactly `size` bytes, if this thread has one.
fn take(size: usize) -> Option<*mut u8> {
    FREE.try_with(|f| {
        let mut f = f.try_borrow_mut().ok()?;
        let len = f.len;
        let i = f.slots[..len].iter().position(|s| s.size == size)?;
        let slot = f.slots[i];
        f.slots[i] = f.slots[len - 1];
        f.len -= 1;
        f.bytes -= size;
        Some(slot.ptr)
    })
    .ok()
    .flatten()
}

/// Keeps the block if this thread's pool has room; whether it did.
fn keep(ptr: *mut u8, size: usize) -> bool {
    FREE.try_with(|f| {
        let Ok(mut f) = f.try_borrow_mut() else {
            return false;
        };
        if f.len == POOL_SLOTS || f.bytes + size > POOL_BYTES {
            return false;
        }
        let len = f.len;
        f.slots[len] = Slot { ptr, size };
        f.len += 1;
        f.bytes += size;
        true
    })
    .unwrap_or(false)
}

// SAFETY: a pooled block came from `inner` with a layout of the same size
// and alignment as the one it is handed out for (both are matched exactly),
// and is handed out at most once until it is freed again; everything else
// is forwarded unchanged.
unsafe impl<A: GlobalAlloc> GlobalAlloc for PooledDmaAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if pooled(&layout) {
            if let Some(p) = take(layout.size()) {
                return p;
            }
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if pooled(&layout) {
            if let Some(p) = take(layout.size()) {
                // SAFETY: `p` is a block of `layout.size()` bytes.
                unsafe { std::ptr::write_bytes(p, 0, layout.size()) };
                return p;
            }
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if pooled(&layout) && keep(ptr, layout.size()) {
            return;
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !pooled(&layout) && !pooled(&new_layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { self.inner.realloc(ptr, layout, new_size) };
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { realloc_by_copy(self, ptr, layout, new_layout) }
    }
}

/// `realloc` as a fresh allocation from `a`, filled from the old one,
/// which is then freed: for an allocator that hands some sizes to another
/// mechanism, so a block may not be resized where it lies.
///
/// # Safety
///
/// As [`GlobalAlloc::realloc`]: `ptr` was allocated by `a` with `layout`,
/// and `new_layout` has the same alignment and a valid non-zero size.
pub unsafe fn realloc_by_copy<A: GlobalAlloc>(
    a: &A,
    ptr: *mut u8,
    layout: Layout,
    new_layout: Layout,
) -> *mut u8 {
    // SAFETY: the caller's guarantees; the copy stays within both blocks.
    unsafe {
        let new = a.alloc(new_layout);
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_layout.size()));
            a.dealloc(ptr, layout);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    #[test]
    fn a_freed_buffer_is_reused_and_the_pool_is_bounded() {
        let a = PooledDmaAlloc::new(System);
        let layout = Layout::from_size_align(4 << 20, BLOCK as usize).unwrap();
        // SAFETY: non-zero layouts; each block freed once with its layout.
        unsafe {
            let p = a.alloc(layout);
            p.write(1);
            a.dealloc(p, layout);
            let q = a.alloc(layout);
            assert_eq!(p, q, "the freed block comes back");
            // Another size is not served from it.
            let other = Layout::from_size_align(1 << 20, BLOCK as usize).unwrap();
            let r = a.alloc(other);
            assert_ne!(r, q);
            a.dealloc(r, other);
            assert_eq!(
                a.alloc(other),
                r,
                "a freed block of the other size comes back too"
            );
            System.dealloc(r, other);
            a.dealloc(q, layout);

            // More than POOL_BYTES freed: the pool keeps only what fits.
            let blocks: Vec<*mut u8> = (0..POOL_BYTES / (4 << 20) + 4)
                .map(|_| a.alloc(layout))
                .collect();
            for &b in &blocks {
                a.dealloc(b, layout);
            }
            FREE.with(|f| {
                let f = f.borrow();
                assert_eq!(f.bytes, POOL_BYTES);
                assert_eq!(f.len, POOL_BYTES / (4 << 20));
            });
            // Small or unaligned allocations never enter the pool.
            let small = Layout::from_size_align(4096, BLOCK as usize).unwrap();
            let s = a.alloc(small);
            a.dealloc(s, small);
            let plain = Layout::from_size_align(4 << 20, 8).unwrap();
            let p = a.alloc(plain);
            a.dealloc(p, plain);
            FREE.with(|f| assert_eq!(f.borrow().bytes, POOL_BYTES));
        }
    }
}
