//! rtnetlink, for what only it tells or does: which XDP program an interface
//! runs and in which mode (`IFLA_XDP`), and attaching by file descriptor,
//! the way `ip link set dev IFACE xdp` does, for programs that are not
//! attached through a BPF link.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd},
};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::{
    link::{LinkAttribute, LinkMessage, LinkXdp, XdpAttached},
    RouteNetlinkMessage,
};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use serde::Serialize;
use thiserror::Error;

/// `XDP_FLAGS_UPDATE_IF_NOEXIST`: fail if a program is attached.
pub const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1 << 0;
/// `XDP_FLAGS_SKB_MODE`: generic XDP.
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`: native XDP.
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// `XDP_FLAGS_HW_MODE`: offloaded XDP.
pub const XDP_FLAGS_HW_MODE: u32 = 1 << 3;
/// `XDP_FLAGS_REPLACE`: replace only the program given by `IFLA_XDP_EXPECTED_FD`.
pub const XDP_FLAGS_REPLACE: u32 = 1 << 4;

/// Where an XDP program runs on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachedMode {
    /// In the driver (`XDP_ATTACHED_DRV`).
    Native,
    /// In the generic, skb-based path (`XDP_ATTACHED_SKB`).
    Generic,
    /// On the NIC (`XDP_ATTACHED_HW`).
    Offload,
}

impl AttachedMode {
    /// The mode's name, as `ip link` and xdpstat's `--mode` spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Generic => "generic",
            Self::Offload => "offload",
        }
    }

    /// The netlink flag that selects this mode.
    pub const fn flag(self) -> u32 {
        match self {
            Self::Native => XDP_FLAGS_DRV_MODE,
            Self::Generic => XDP_FLAGS_SKB_MODE,
            Self::Offload => XDP_FLAGS_HW_MODE,
        }
    }
}

/// One XDP program on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct AttachedProgram {
    /// Where it runs.
    pub mode: AttachedMode,
    /// Its program id.
    pub prog_id: u32,
}

/// An interface, and the XDP programs on it (one per mode at most).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// `ifindex`.
    pub index: u32,
    /// Its name.
    pub name: String,
    /// The XDP programs attached, in native, generic, offload order.
    pub xdp: Vec<AttachedProgram>,
}

/// A netlink request failed.
#[derive(Debug, Error)]
pub enum NetlinkError {
    /// Talking to the kernel failed.
    #[error("netlink: {0}")]
    Io(#[from] io::Error),
    /// The kernel refused, maybe with an extended-ack message.
    #[error("{}", match message { Some(m) => format!("{m} ({source})"), None => source.to_string() })]
    Refused {
        /// errno.
        #[source]
        source: io::Error,
        /// `NLMSGERR_ATTR_MSG`, when the kernel gave one.
        message: Option<String>,
    },
    /// The reply could not be decoded.
    #[error("netlink: cannot decode the kernel's reply: {0}")]
    Decode(String),
}

impl NetlinkError {
    /// The errno of a refusal.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Io(e) | Self::Refused { source: e, .. } => e.raw_os_error(),
            Self::Decode(_) => None,
        }
    }
}

fn socket() -> Result<Socket, NetlinkError> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    // Ask for the kernel's own error text (e.g. "Native and generic XDP
    // can't be active at the same time.") and a short ack.
    socket.set_ext_ack(true)?;
    socket.set_cap_ack(true)?;
    Ok(socket)
}

/// Reads `NLMSGERR_ATTR_MSG` from the part of an error message after the
/// 16-byte request header (`NETLINK_CAP_ACK` drops the request's body).
fn ext_ack_message(after_code: &[u8]) -> Option<String> {
    const NLMSGERR_ATTR_MSG: u16 = 1;
    let mut tlvs = after_code.get(16..)?;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|&b| b == 0).next().unwrap_or(text);
            return Some(String::from_utf8_lossy(text).trim().to_owned());
        }
        tlvs = &tlvs[(len + 3) & !3..];
    }
    None
}

/// Sends one request and collects every reply message until the ack or the
/// end of the dump.
fn request(
    message: RouteNetlinkMessage,
    flags: u16,
) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
    let socket = socket()?;
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = 1;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0)?;

    let mut replies = Vec::new();
    loop {
        let (data, _) = socket.recv_from_full()?;
        let mut offset = 0;
        while offset < data.len() {
            let reply: NetlinkMessage<RouteNetlinkMessage> =
                NetlinkMessage::deserialize(&data[offset..])
                    .map_err(|e| NetlinkError::Decode(e.to_string()))?;
            let len = reply.header.length as usize;
            match reply.payload {
                NetlinkPayload::Done(_) => return Ok(replies),
                NetlinkPayload::Error(err) => {
                    return match err.code {
                        None => Ok(replies),
                        Some(_) => Err(NetlinkError::Refused {
                            source: err.to_io(),
                            message: ext_ack_message(&err.header),
                        }),
                    };
                }
                NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                _ => {}
            }
            if len == 0 {
                break;
            }
            offset += (len + 3) & !3;
        }
        // A plain (non-dump) get ends with its one reply.
        if flags & NLM_F_DUMP == 0 && flags & NLM_F_ACK == 0 && !replies.is_empty() {
            return Ok(replies);
        }
    }
}

fn interface_of(message: LinkMessage) -> Interface {
    let mut name = String::new();
    let mut xdp = Vec::new();
    for attribute in message.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name = n,
            LinkAttribute::Xdp(nlas) => {
                let mut attached = XdpAttached::None;
                let mut prog_id = 0;
                let (mut drv, mut skb, mut hw) = (0, 0, 0);
                for nla in nlas {
                    match nla {
                        LinkXdp::Attached(a) => attached = a,
                        LinkXdp::ProgId(id) => prog_id = id,
                        LinkXdp::DrvProgId(id) => drv = id,
                        LinkXdp::SkbProgId(id) => skb = id,
                        LinkXdp::HwProgId(id) => hw = id,
                        _ => {}
                    }
                }
                // With one program the kernel sends only IFLA_XDP_PROG_ID;
                // with several, one id per mode.
                match attached {
                    XdpAttached::Driver => drv = prog_id,
                    XdpAttached::SocketBuffer => skb = prog_id,
                    XdpAttached::Hardware => hw = prog_id,
                    _ => {}
                }
                for (mode, id) in [
                    (AttachedMode::Native, drv),
                    (AttachedMode::Generic, skb),
                    (AttachedMode::Offload, hw),
                ] {
                    if id != 0 {
                        xdp.push(AttachedProgram { mode, prog_id: id });
                    }
                }
            }
            _ => {}
        }
    }
    Interface {
        index: message.header.index,
        name,
        xdp,
    }
}

/// Every interface in this network namespace, with its XDP programs.
///
/// # Errors
///
/// [`NetlinkError`] if the dump fails.
pub fn interfaces() -> Result<Vec<Interface>, NetlinkError> {
    let replies = request(
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        NLM_F_REQUEST | NLM_F_DUMP,
    )?;
    Ok(replies
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewLink(link) => Some(interface_of(link)),
            _ => None,
        })
        .collect())
}

/// One interface by index, or `None` if it does not exist.
///
/// # Errors
///
/// [`NetlinkError`] for any failure but "no such device".
pub fn interface(index: u32) -> Result<Option<Interface>, NetlinkError> {
    let mut message = LinkMessage::default();
    message.header.index = index;
    match request(RouteNetlinkMessage::GetLink(message), NLM_F_REQUEST) {
        Ok(replies) => Ok(replies.into_iter().find_map(|reply| match reply {
            RouteNetlinkMessage::NewLink(link) => Some(interface_of(link)),
            _ => None,
        })),
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sets (or, with `prog` `None`, clears) the XDP program of `index`, as
/// `ip link set dev IFACE xdp` does. With `expected`, the kernel changes
/// nothing unless that program is the one attached (`XDP_FLAGS_REPLACE`).
///
/// # Errors
///
/// [`NetlinkError::Refused`] with the kernel's reason.
pub fn set_xdp(
    index: u32,
    prog: Option<BorrowedFd<'_>>,
    expected: Option<BorrowedFd<'_>>,
    mut flags: u32,
) -> Result<(), NetlinkError> {
    let mut nlas = vec![LinkXdp::Fd(prog.map_or(-1, |fd| fd.as_raw_fd()))];
    if let Some(expected) = expected {
        flags |= XDP_FLAGS_REPLACE;
        nlas.push(LinkXdp::ExpectedFd(expected.as_raw_fd() as u32));
    }
    if flags != 0 {
        nlas.push(LinkXdp::Flags(flags));
    }
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.attributes.push(LinkAttribute::Xdp(nlas));
    request(
        RouteNetlinkMessage::SetLink(message),
        NLM_F_REQUEST | NLM_F_ACK,
    )
    .map(drop)
}
