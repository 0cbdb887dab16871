//! File capabilities: the text RPM headers store (`cap_net_raw,cap_net_bind_service=ep`,
//! libcap's `cap_to_text` form) → the `security.capability` xattr value the kernel reads.
//!
//! ```text
//! vfs_cap_data, VFS_CAP_REVISION_2 (20 bytes, all little-endian u32):
//!   magic_etc     = 0x02000000 | (1 if the file's effective bit is set)
//!   permitted[0]  inheritable[0]     capabilities 0..31
//!   permitted[1]  inheritable[1]     capabilities 32..63
//! ```
//!
//! Checked byte for byte against what `setcap` writes (`getfattr -e hex`).

/// The xattr name, without the trailing NUL the GVariant encoding adds.
pub const XATTR_NAME: &[u8] = b"security.capability";

const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x0000_0001;

/// Capability names in number order (`linux/capability.h`); index = capability number.
const NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// `all` (or an empty name list) means every capability this table knows: 0..=40, which
/// is what libcap writes for `=ep` on kernels ≥ 5.9.
const ALL: u64 = (1 << NAMES.len()) - 1;

/// The three capability sets of a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sets {
    effective: u64,
    permitted: u64,
    inheritable: u64,
}

/// Convert capability text to the `security.capability` value. Empty text means "no
/// capabilities" and is the caller's business (no xattr at all); this returns an error
/// for it like for any other text libcap would refuse.
pub fn text_to_xattr(text: &str) -> Result<Vec<u8>, String> {
    let sets = parse(text)?;
    if sets.effective != 0 && (sets.permitted | sets.inheritable) & !sets.effective != 0 {
        // libcap's cap_set_file() refuses this too: a file has one effective bit, so
        // the effective set must be empty or cover every permitted/inheritable bit.
        return Err(format!(
            "{text:?}: the effective set must be empty or include every permitted and \
             inheritable capability"
        ));
    }
    let magic = VFS_CAP_REVISION_2
        | if sets.effective != 0 {
            VFS_CAP_FLAGS_EFFECTIVE
        } else {
            0
        };
    let mut out = Vec::with_capacity(20);
    for word in [
        magic,
        sets.permitted as u32,
        sets.inheritable as u32,
        (sets.permitted >> 32) as u32,
        (sets.inheritable >> 32) as u32,
    ] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    Ok(out)
}

/// libcap's text grammar: whitespace-separated clauses `[names](op[flags])+`, where
/// names are comma-separated (`cap_` prefix optional, `all`, or a number), op is one of
/// `=` (set exactly), `+` (add) or `-` (drop), and flags are any of `e`, `i`, `p`.
fn parse(text: &str) -> Result<Sets, String> {
    let mut sets = Sets::default();
    let mut any = false;
    for clause in text.split_whitespace() {
        any = true;
        let op_at = clause
            .find(['=', '+', '-'])
            .ok_or_else(|| format!("{text:?}: clause {clause:?} has no '=', '+' or '-'"))?;
        let (names, mut rest) = clause.split_at(op_at);
        let caps = parse_names(names).map_err(|e| format!("{text:?}: {e}"))?;
        while let Some(op) = rest.chars().next() {
            let flags_end = rest[1..]
                .find(['=', '+', '-'])
                .map_or(rest.len(), |i| i + 1);
            let flags = &rest[1..flags_end];
            rest = &rest[flags_end..];
            if op == '=' {
                sets.effective &= !caps;
                sets.permitted &= !caps;
                sets.inheritable &= !caps;
            }
            for flag in flags.chars() {
                let set = match flag {
                    'e' => &mut sets.effective,
                    'p' => &mut sets.permitted,
                    'i' => &mut sets.inheritable,
                    _ => return Err(format!("{text:?}: unknown capability flag {flag:?}")),
                };
                match op {
                    '-' => *set &= !caps,
                    _ => *set |= caps,
                }
            }
        }
    }
    if !any {
        return Err("empty capability text".into());
    }
    Ok(sets)
}

fn parse_names(names: &str) -> Result<u64, String> {
    if names.is_empty() {
        return Ok(ALL);
    }
    let mut out = 0u64;
    for name in names.split(',') {
        let lower = name.to_ascii_lowercase();
        if lower == "all" {
            out |= ALL;
            continue;
        }
        let bare = lower.strip_prefix("cap_").unwrap_or(&lower);
        let bit = match NAMES.iter().position(|n| *n == bare) {
            Some(i) => i as u32,
            None => match bare.parse::<u32>() {
                Ok(n) if n < 64 => n,
                _ => return Err(format!("unknown capability {name:?}")),
            },
        };
        out |= 1 << bit;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Expected values are `getfattr -d -m - -e hex` after `setcap TEXT file`
    /// (libcap2-bin 2.66, Linux 6.x).
    #[test]
    fn matches_setcap() {
        let cases = [
            (
                "cap_net_bind_service,cap_net_raw=ep",
                "0100000200240000000000000000000000000000",
            ),
            (
                "cap_net_raw+p cap_sys_admin+i",
                "0000000200200000000020000000000000000000",
            ),
            (
                "cap_checkpoint_restore,cap_chown=eip",
                "0100000201000000010000000001000000010000",
            ),
            ("=ep", "01000002ffffffff00000000ff01000000000000"),
            ("cap_net_raw=e", "0100000200000000000000000000000000000000"),
            ("cap_chown=", "0000000200000000000000000000000000000000"),
            ("cap_chown+ep-p", "0100000200000000000000000000000000000000"),
            ("CAP_NET_RAW+ep", "0100000200200000000000000000000000000000"),
        ];
        for (text, want) in cases {
            assert_eq!(hex(&text_to_xattr(text).unwrap()), want, "{text}");
        }
    }

    #[test]
    fn refuses_what_libcap_refuses() {
        for bad in [
            "",
            "   ",
            "cap_net_raw",
            "cap_bogus=ep",
            "cap_net_raw=epx",
            "cap_net_raw+ep cap_chown+p",
            "all=ep cap_chown-e",
            "cap_99=p",
        ] {
            assert!(text_to_xattr(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
