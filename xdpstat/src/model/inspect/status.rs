//! Which interfaces of this network namespace run an XDP program, like
//! `xdp-loader status` or `bpftool net show`, and whether xdpstat or
//! something else put it there.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
};

use serde::Serialize;

use super::progs::{program_infos, InspectError, Tag};
use crate::kernel::netlink::{self, AttachedMode};
use crate::kernel::sys;
use crate::model::attach::{self, Holder};

/// Who attached a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Owner {
    /// xdpstat: its pins under `/sys/fs/bpf/xdpstat/<iface>/` hold the
    /// program.
    Xdpstat,
    /// Another loader (`ip link`, xdp-loader, libbpf, …).
    Other,
}

impl Owner {
    /// The owner's name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Xdpstat => "xdpstat",
            Self::Other => "other",
        }
    }
}

/// One XDP program on one interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct XdpStatus {
    /// Interface name.
    pub interface: String,
    /// Interface index.
    pub ifindex: u32,
    /// Native, generic or offload.
    pub mode: AttachedMode,
    /// Program id.
    pub prog_id: u32,
    /// Program name (empty if it has none, or was unloaded meanwhile).
    pub name: String,
    /// Program tag, unless it was unloaded meanwhile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<Tag>,
    /// xdpstat or another loader.
    pub owner: Owner,
    /// Whether a BPF link or a netlink attachment holds it.
    pub held_by: Holder,
    /// The link's id, when a link holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_id: Option<u32>,
    /// xdpstat's pin directory, when xdpstat owns it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin_dir: Option<PathBuf>,
    /// Whether xdpstat's observers count for this program.
    pub observed: bool,
}

/// The XDP links in the system: `(ifindex, prog_id)` to link id.
///
/// Link info names no network namespace, so this matches a link by
/// interface index and program both; a link from another namespace would
/// need the same index and the very same program to be mistaken for one.
fn xdp_links() -> Result<HashMap<(u32, u32), u32>, InspectError> {
    Ok(sys::xdp_links()?
        .into_iter()
        .map(|(_, info)| ((info.xdp_ifindex, info.prog_id), info.id))
        .collect())
}

/// Every XDP program attached to an interface of this network namespace,
/// in interface order then native, generic, offload.
///
/// # Errors
///
/// [`InspectError`] if netlink or the bpf syscall fails; callers check
/// privileges first (program names need `CAP_SYS_ADMIN`).
pub fn status() -> Result<Vec<XdpStatus>, InspectError> {
    let interfaces: Vec<_> = netlink::interfaces()?
        .into_iter()
        .filter(|i| !i.xdp.is_empty())
        .collect();
    if interfaces.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: HashSet<u32> = interfaces
        .iter()
        .flat_map(|i| i.xdp.iter().map(|p| p.prog_id))
        .collect();
    let mut programs = HashMap::new();
    for info in program_infos() {
        let info = info?;
        if wanted.contains(&info.id()) {
            let name = String::from_utf8_lossy(info.name()).into_owned();
            programs.insert(info.id(), (name, Tag(info.tag())));
        }
    }
    let links = xdp_links()?;
    let mut found = Vec::new();
    for iface in interfaces {
        // xdpstat's own attachment, if its pins hold one of these programs.
        let ours = attach::inspect(&iface.name)?;
        let observed = crate::model::observe::observed_prog_id(&iface.name);
        for p in &iface.xdp {
            let ours = ours.as_ref().filter(|a| a.prog_id == p.prog_id);
            let link_id = links.get(&(iface.index, p.prog_id)).copied();
            let (name, tag) = match programs.get(&p.prog_id) {
                Some((name, tag)) => (name.clone(), Some(*tag)),
                None => (String::new(), None),
            };
            found.push(XdpStatus {
                interface: iface.name.clone(),
                ifindex: iface.index,
                mode: p.mode,
                prog_id: p.prog_id,
                name,
                tag,
                owner: if ours.is_some() {
                    Owner::Xdpstat
                } else {
                    Owner::Other
                },
                held_by: if link_id.is_some() {
                    Holder::Link
                } else {
                    Holder::Netlink
                },
                link_id,
                pin_dir: ours.map(|a| a.pin_dir.clone()),
                observed: observed == Some(p.prog_id),
            });
        }
    }
    Ok(found)
}
