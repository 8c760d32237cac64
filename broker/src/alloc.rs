//! The broker's global allocator: the system allocator, except that very
//! large allocations are mapped lazily.
//!
//! Why: kafka-protocol reserves `Vec::with_capacity(count)` for an array
//! with the count a client sent, before it checks that the bytes are there.
//! A 14-byte request claiming 2^31 elements asks for ~150 GB; malloc
//! refuses, and an allocation failure aborts the process. Mapped with
//! MAP_NORESERVE, such a reservation costs only address space: pages are
//! committed when written, and decoding stops at the end of the (bounded)
//! request frame, long before. Legitimate allocations never come near the
//! threshold. (With `vm.overcommit_memory=2` the kernel refuses even these
//! mappings; the broker logs a warning at start-up in that mode.)

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large are mapped lazily.
const LAZY: usize = 1 << 30;
/// mmap hands out page-aligned memory; larger alignments go to malloc.
const PAGE: usize = 4096;

/// See the module documentation.
pub struct LazyLargeAlloc;

fn lazy(layout: &Layout) -> bool {
    layout.size() >= LAZY && layout.align() <= PAGE
}

// SAFETY: every pointer is freed by the same mechanism that allocated it,
// decided by `lazy(layout)`, which depends only on the layout the caller
// must pass back unchanged.
unsafe impl GlobalAlloc for LazyLargeAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !lazy(&layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: an anonymous private mapping has no preconditions.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            p.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if lazy(&layout) {
            // SAFETY: anonymous mappings are zero-filled.
            unsafe { self.alloc(layout) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if lazy(&layout) {
            // SAFETY: `ptr` came from our mmap of exactly this size.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !lazy(&layout) && !lazy(&new_layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { sluice_wal_core::buffer_pool::realloc_by_copy(self, ptr, layout, new_layout) }
    }
}

/// Warns when the kernel's overcommit mode would refuse lazy mappings.
pub fn check_overcommit() {
    if std::fs::read_to_string("/proc/sys/vm/overcommit_memory").is_ok_and(|m| m.trim() == "2") {
        tracing::warn!(
            "vm.overcommit_memory is 2: a hostile request that claims a huge array can make the \
             broker abort instead of closing the connection"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_reservations_cost_only_address_space() {
        let a = LazyLargeAlloc;
        let layout = Layout::from_size_align(150 << 30, 8).unwrap();
        // SAFETY: non-zero layout; freed with the same layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null(), "a 150 GB lazy reservation must succeed");
            *p = 7;
            assert_eq!(*p, 7);
            a.dealloc(p, layout);
        }
        let small = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: as above.
        unsafe {
            let p = a.alloc(small);
            let p = a.realloc(p, small, 2 << 30);
            assert!(!p.is_null());
            a.dealloc(p, Layout::from_size_align(2 << 30, 8).unwrap());
        }
    }
}
