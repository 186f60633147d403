//! The allocators' settings for a study run in one process, and handing freed memory back to
//! the operating system between stages.

/// The process allocates with mimalloc (`main.rs`). glibc's allocator, which the C libraries
/// still use, keeps its mmap threshold fixed at 4 MiB: a block that large is then always mapped
/// on its own and unmapped when freed, instead of raising the threshold and keeping freed
/// large blocks in its arenas.
pub(super) fn configure_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator setting; it is called before the stages
    // allocate their tables and touches no allocation.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

/// Hands the memory a finished stage freed back to the operating system, so that in one
/// process the next stage's peak does not come on top of what the previous stages freed.
pub(super) fn release_freed_memory() {
    // SAFETY: mi_collect only frees mimalloc's unused pages and touches no live allocation.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator's arenas to the system; it
    // touches no live allocation and is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
