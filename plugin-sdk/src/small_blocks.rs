//! A small-block cache in front of the guest's allocator: every post that
//! crosses into a plugin arrives as a dozen small strings the plugin frees at
//! the end of the batch, and the next batch asks for the same sizes again.
//! Keeping freed small blocks on per-size free lists turns those allocations
//! into a pointer pop and a push instead of a trip through `dlmalloc`.
//!
//! Blocks of up to [`MAX_SMALL`] bytes (alignment up to [`ALIGN`]) are
//! rounded up to a multiple of [`ALIGN`] and, once freed, kept for reuse by
//! their size class (never given back, like the linear memory itself); larger
//! or more aligned blocks go straight to the system allocator. It is installed
//! only in single-threaded WebAssembly builds (feature `small-block-cache`, on
//! by default; turn default features off to bring your own allocator).

// An allocator is unsafe code by nature; every block says why it holds.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr::{self, NonNull};

/// The largest block kept on a free list, in bytes.
pub const MAX_SMALL: usize = 256;
/// Size classes are multiples of this, and small blocks are aligned to it.
pub const ALIGN: usize = 16;
const CLASSES: usize = MAX_SMALL / ALIGN;

/// The size class of a small layout, or `None` for one the system allocator
/// takes directly.
fn class(layout: Layout) -> Option<usize> {
    (layout.size() <= MAX_SMALL && layout.align() <= ALIGN)
        .then(|| layout.size().max(1).div_ceil(ALIGN) - 1)
}

/// The layout the system allocator sees for a block of `class`.
fn class_layout(class: usize) -> Layout {
    Layout::from_size_align((class + 1) * ALIGN, ALIGN).expect("a size class is a valid layout")
}

/// Free lists of small blocks in front of an allocator `A` (the system
/// allocator in plugins; another one in tests). Each free block holds the
/// pointer to the next one.
pub struct SmallBlockCache<A: GlobalAlloc = System> {
    inner: A,
    free: UnsafeCell<[Option<NonNull<u8>>; CLASSES]>,
}

impl<A: GlobalAlloc> std::fmt::Debug for SmallBlockCache<A> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SmallBlockCache")
            .finish_non_exhaustive()
    }
}

// SAFETY: the cache is only installed as the global allocator of
// single-threaded WebAssembly builds (see `lib.rs`), where no two calls can
// overlap; tests use one instance per thread.
unsafe impl<A: GlobalAlloc + Sync> Sync for SmallBlockCache<A> {}

impl<A: GlobalAlloc> SmallBlockCache<A> {
    /// An empty cache in front of `inner`.
    pub const fn new(inner: A) -> SmallBlockCache<A> {
        SmallBlockCache {
            inner,
            free: UnsafeCell::new([None; CLASSES]),
        }
    }
}

// SAFETY: every block handed out is either `inner`'s own (large or
// over-aligned layouts, forwarded unchanged) or a block of its size class,
// which `inner` gave out with `class_layout` and which no caller holds: it is
// on exactly one free list until `alloc` pops it, and goes back to `inner`
// only with that same layout (see `Drop`). Blocks of a class are at least as
// large and as aligned as any layout the class takes.
unsafe impl<A: GlobalAlloc> GlobalAlloc for SmallBlockCache<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class(layout) else {
            // SAFETY: forwarded with the caller's own layout.
            return unsafe { self.inner.alloc(layout) };
        };
        // SAFETY: single-threaded (see the `Sync` impl); no reference into
        // the lists outlives this call.
        let free = unsafe { &mut *self.free.get() };
        match free[class] {
            Some(block) => {
                // SAFETY: a free block's first word holds the next free block
                // (written by `dealloc`); blocks are at least `ALIGN` bytes
                // and `ALIGN`-aligned, so the read is in bounds and aligned.
                free[class] = unsafe { block.as_ptr().cast::<Option<NonNull<u8>>>().read() };
                block.as_ptr()
            }
            // SAFETY: a size class is a valid, non-zero layout.
            None => unsafe { self.inner.alloc(class_layout(class)) },
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(class) = class(layout) else {
            // SAFETY: a block this large came from `inner` with this layout.
            return unsafe { self.inner.dealloc(block, layout) };
        };
        // SAFETY: single-threaded; the block is at least `ALIGN` bytes,
        // `ALIGN`-aligned and no longer used by the caller, so its first word
        // may hold the list link.
        unsafe {
            let free = &mut *self.free.get();
            block.cast::<Option<NonNull<u8>>>().write(free[class]);
            free[class] = NonNull::new(block);
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `GlobalAlloc::realloc`'s contract makes this a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new_layout)) {
            // Both large: the system allocator may grow or shrink in place.
            // SAFETY: forwarded with the caller's own arguments.
            (None, None) => unsafe { self.inner.realloc(block, layout, new_size) },
            // The same size class: the block already fits.
            (Some(old), Some(new)) if old == new => block,
            _ => {
                // SAFETY: `new_layout` is valid; the copy covers the bytes
                // both blocks hold; the old block is released with its layout.
                unsafe {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}

/// Hands every cached block back to `inner`. The global allocator is a
/// static and is never dropped; a cache in a test is, and this makes a block
/// lost from (or listed twice on) a free list show as a leak (or a double
/// free) under Miri.
impl<A: GlobalAlloc> Drop for SmallBlockCache<A> {
    fn drop(&mut self) {
        for (class, head) in self.free.get_mut().iter_mut().enumerate() {
            let mut next = head.take();
            while let Some(block) = next {
                // SAFETY: a listed block is `ALIGN`-aligned, at least `ALIGN`
                // bytes, holds the next link in its first word (written by
                // `dealloc`), and came from `inner` with its class's layout.
                unsafe {
                    next = block.as_ptr().cast::<Option<NonNull<u8>>>().read();
                    self.inner.dealloc(block.as_ptr(), class_layout(class));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_fall_into_classes_and_large_or_aligned_blocks_do_not() {
        let layout = |size, align| Layout::from_size_align(size, align).unwrap();
        assert_eq!(class(layout(0, 1)), Some(0));
        assert_eq!(class(layout(1, 1)), Some(0));
        assert_eq!(class(layout(16, 8)), Some(0));
        assert_eq!(class(layout(17, 1)), Some(1));
        assert_eq!(class(layout(256, 16)), Some(CLASSES - 1));
        assert_eq!(class(layout(257, 1)), None);
        assert_eq!(class(layout(8, 32)), None);
    }

    #[test]
    fn freed_blocks_are_reused_by_size_class_and_keep_their_contents_apart() {
        let cache = SmallBlockCache::new(System);
        let layout = |size| Layout::from_size_align(size, 1).unwrap();
        // SAFETY: each block is written within its own layout's size and
        // freed once, with the layout it was last allocated with.
        unsafe {
            let a = cache.alloc(layout(20));
            let b = cache.alloc(layout(20));
            assert_ne!(a, b);
            assert_eq!(a as usize % ALIGN, 0);
            cache.dealloc(a, layout(20));
            cache.dealloc(b, layout(20));
            // Last freed, first reused; a size of the same class shares the list.
            assert_eq!(cache.alloc(layout(32)), b);
            assert_eq!(cache.alloc(layout(17)), a);
            // Another class does not.
            let c = cache.alloc(layout(40));
            assert!(c != a && c != b);
            ptr::write_bytes(a, 0xAA, 20);
            ptr::write_bytes(b, 0xBB, 32);
            ptr::write_bytes(c, 0xCC, 40);
            assert_eq!(*a.add(19), 0xAA);
            assert_eq!(*b, 0xBB);
            for (block, size) in [(a, 17), (b, 32), (c, 40)] {
                cache.dealloc(block, layout(size));
            }
        }
    }

    #[test]
    fn realloc_keeps_the_bytes_across_classes_and_into_large_blocks() {
        let cache = SmallBlockCache::new(System);
        // SAFETY: the block is only read and written within the size it was
        // last given, and released once, with that layout.
        unsafe {
            let mut layout = Layout::from_size_align(3, 1).unwrap();
            let mut block = cache.alloc(layout);
            block.copy_from(b"abc".as_ptr(), 3);
            for size in [10, 16, 40, 200, 300, 5000, 70, 2] {
                let grown = cache.realloc(block, layout, size);
                assert!(!grown.is_null());
                let kept = layout.size().min(size).min(3);
                assert_eq!(std::slice::from_raw_parts(grown, kept), &b"abc"[..kept]);
                block = grown;
                layout = Layout::from_size_align(size, 1).unwrap();
                if size >= 3 {
                    block.copy_from(b"abc".as_ptr(), 3);
                }
            }
            cache.dealloc(block, layout);
        }
    }

    #[test]
    fn mixed_sizes_and_alignments_never_overlap() {
        // Small and large blocks of many sizes and alignments, freed in mixed
        // order, through the cache in front of the system allocator.
        struct Local(SmallBlockCache);
        let local = Local(SmallBlockCache::new(System));
        let mut blocks: Vec<(*mut u8, Layout, u8)> = Vec::new();
        for round in 0..2_000usize {
            let size = (round * 37) % 600 + 1;
            let layout = Layout::from_size_align(size, 1 << (round % 5)).unwrap();
            let fill = (round % 251) as u8;
            // SAFETY: the block is written within the layout it was asked for.
            unsafe {
                let block = local.0.alloc(layout);
                ptr::write_bytes(block, fill, size);
                blocks.push((block, layout, fill));
            }
            if round % 3 == 0 {
                let (block, layout, fill) = blocks.swap_remove(round % blocks.len());
                // SAFETY: a live block, read within its layout, then freed
                // once with that layout.
                unsafe {
                    let bytes = std::slice::from_raw_parts(block, layout.size());
                    assert!(
                        bytes.iter().all(|byte| *byte == fill),
                        "a block was overwritten"
                    );
                    local.0.dealloc(block, layout);
                }
            }
        }
        for (block, layout, fill) in blocks {
            // SAFETY: as above, for the blocks still live.
            unsafe {
                let bytes = std::slice::from_raw_parts(block, layout.size());
                assert!(
                    bytes.iter().all(|byte| *byte == fill),
                    "a block was overwritten"
                );
                local.0.dealloc(block, layout);
            }
        }
    }
}
