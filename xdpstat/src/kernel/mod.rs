//! Everything that talks to the kernel: `bpf(2)` with safe wrappers
//! ([`sys`]), netlink ([`netlink`]), bpffs and the pin layout ([`bpffs`]),
//! interface names ([`iface`]) and the privilege check ([`privileges`]).
//! Nothing here formats text for people.

pub mod bpffs;
pub mod iface;
pub mod kfunc;
pub mod map;
pub mod netlink;
pub mod privileges;
pub mod sys;

#[cfg(test)]
mod tests {
    #[test]
    fn the_analysis_crates_o_nonblock_is_libcs() {
        assert_eq!(xdpstat_analysis::input::O_NONBLOCK, libc::O_NONBLOCK);
    }
}
