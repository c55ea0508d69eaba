//! Local time, which only libc knows (the time zone).

/// The local hour, minute and second of `secs` since the epoch, or `None`
/// when libc cannot convert it.
pub fn local_hms(secs: u64) -> Option<(u32, u32, u32)> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: an all-zero tm is valid; localtime_r writes only into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return None;
    }
    Some((tm.tm_hour as u32, tm.tm_min as u32, tm.tm_sec as u32))
}

/// The local time zone's offset from UTC at `secs` since the epoch, in
/// seconds east, or `None` when libc cannot tell.
pub fn utc_offset(secs: u64) -> Option<i64> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: an all-zero tm is valid; localtime_r writes only into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return None;
    }
    Some(tm.tm_gmtoff)
}
