//! A global allocator that counts, on one thread and only while asked, the bytes live on
//! the heap: the size of a data structure built synchronously, such as the hook cache's
//! snapshot. Outside a measurement it costs one thread-local read per allocation. It
//! allocates with mimalloc, as the service binaries do, so the services run in this process
//! as they run on their own.

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc;
use std::cell::Cell;

pub struct Counting;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn note(bytes: i64) {
    let _ = ACTIVE.try_with(|active| {
        if active.get() {
            let _ = LIVE.try_with(|live| live.set(live.get() + bytes));
        }
    });
}

// SAFETY: every call is passed to `MiMalloc` (the services' allocator) unchanged; the
// counting touches only const-initialised thread-locals, which never allocate.
// The one unsafe code of the workspace (denied elsewhere): a global allocator is an unsafe
// trait; each method only forwards to mimalloc.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        unsafe { MiMalloc.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as i64));
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        unsafe { MiMalloc.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as i64 - layout.size() as i64);
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}

/// Runs `build` on this thread and returns what it built with the heap bytes that were
/// allocated and not freed meanwhile (what the result holds, if `build` drops nothing it
/// did not allocate).
pub fn live_bytes<T>(build: impl FnOnce() -> T) -> (T, i64) {
    LIVE.with(|live| live.set(0));
    ACTIVE.with(|active| active.set(true));
    let built = build();
    ACTIVE.with(|active| active.set(false));
    (built, LIVE.with(Cell::get))
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_what_the_result_holds() {
        let (v, bytes) = super::live_bytes(|| vec![0u64; 1000]);
        assert_eq!(v.len(), 1000);
        assert_eq!(bytes, 8000);
    }
}
