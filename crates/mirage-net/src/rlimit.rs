//! Raising the open-file limit.
//!
//! Every session is a file descriptor, and distributions default the soft
//! limit to 1024, far below `max_connections`. Servers raise the soft limit
//! to the hard limit at start (as nginx and redis do); root may not raise the
//! hard limit here, so we do not try.

/// Raise RLIMIT_NOFILE's soft limit to its hard limit; returns the new soft
/// limit, or the error from the kernel.
#[allow(unsafe_code)]
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass, which
    // lives on this stack frame for the duration of each call.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    #[test]
    fn raises_to_hard_limit() {
        let n = super::raise_fd_limit().unwrap();
        assert!(n >= 1024);
    }
}
