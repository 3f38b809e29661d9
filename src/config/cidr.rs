//! IP networks in CIDR notation, for `server.trusted_proxies`.

use std::{net::IpAddr, str::FromStr};

use serde::Deserialize;

/// An IP network such as `10.0.0.0/8` or `::1/128`; a bare address means just that address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = v4_mask(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = v6_mask(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// Whether no address bits are set past the prefix.
    fn is_network_address(&self) -> bool {
        match self.network {
            IpAddr::V4(a) => u32::from(a) & !v4_mask(self.prefix) == 0,
            IpAddr::V6(a) => u128::from(a) & !v6_mask(self.prefix) == 0,
        }
    }
}

fn v4_mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn v6_mask(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("`server.trusted_proxies`: {s:?} {why}");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s.trim(), None),
        };
        let network = addr
            .parse::<IpAddr>()
            .map_err(|_| bad("is not an IP address or CIDR (e.g. 10.0.0.0/8)"))?
            .to_canonical();
        let bits: u8 = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| bad(&format!("needs a prefix length of 0 to {bits}")))?,
        };
        let cidr = Cidr { network, prefix };
        // `10.0.0.1/8` is most likely a typo for one address or for the network; refuse
        // rather than guess which.
        if !cidr.is_network_address() {
            return Err(bad("has bits set past its prefix length"));
        }
        Ok(cidr)
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}
